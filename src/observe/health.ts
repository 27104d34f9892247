import type { AttemptRecord } from '../queue/store.ts';

// GET /health (SPEC §1). The rules, also in the README:
// - database: DOWN when it cannot be read, its write lock cannot be taken (another writer
//   holds it), it refuses writes (read-only), a write failed for lack of space or an I/O
//   error and none has succeeded since, or the WAL or the instance lock file was lost under
//   the service; else UP. Checking writes nothing: an idle service leaves the disk alone.
// - queue: DEGRADED at or above 90% of QUEUE_MAX_SIZE (new requests about to get 503), else UP.
// - workers: DOWN when a thread could not start, else UP. Threads start with the work and
//   end when idle (src/dispatch/pool.ts): how many are alive (0 to WORKERS) is reported, not judged.
// - authorizer (only with AUTHORIZER_URL): DEGRADED while its circuit breaker is open or
//   half-open (decisions come from the offline rules).
// - callbacks: DEGRADED when, over the last 5 minutes, at least 20 attempts were made and
//   fewer than half were delivered; never DOWN (receivers' outages are not ours).
// Overall: DOWN if database or workers are DOWN, else DEGRADED if any part is, else UP.

export type Level = 'UP' | 'DEGRADED' | 'DOWN';

export interface HealthDeps {
  /** Reads the database and takes (and gives back) its write lock, writing nothing; throws why it cannot. */
  probeDb(): unknown | Promise<unknown>;
  /** Why writes are failing in a way the probe cannot see without writing (disk full), or null. */
  writeFault?: () => string | null;
  /** A database fault known without probing (the WAL or the lock file lost under the service), or null. */
  fault?: () => string | null;
  /** Free bytes where the database lives (reported, not judged: the WAL may still have room), or null. */
  freeBytes?: () => Promise<number | null>;
  queue(): { depth: number; max: number };
  threads(): { alive: number; configured: number; error?: string | null };
  /** The upstream authorizer's breaker; null when no upstream is configured. */
  authorizer?: () => { state: 'closed' | 'open' | 'half_open'; opened: number } | null;
  now?: () => number;
}

const WINDOW_MS = 5 * 60_000;
const BUCKET_MS = 10_000;

export function createHealth(deps: HealthDeps) {
  const now = deps.now ?? Date.now;
  // Ring of 10 s buckets: [attempts, delivered], so the rate costs O(1) memory.
  const buckets = Array.from({ length: WINDOW_MS / BUCKET_MS }, () => ({ start: 0, attempts: 0, delivered: 0 }));

  function bucket(t: number) {
    const start = t - (t % BUCKET_MS);
    const b = buckets[(start / BUCKET_MS) % buckets.length]!;
    if (b.start !== start) {
      b.start = start;
      b.attempts = 0;
      b.delivered = 0;
    }
    return b;
  }

  async function database(): Promise<{ status: Level; error?: string; free_bytes?: number }> {
    const free = (await deps.freeBytes?.()) ?? null;
    const space = free === null ? {} : { free_bytes: free };
    const fault = deps.fault?.() ?? null;
    if (fault) return { status: 'DOWN', error: fault, ...space };
    try {
      // SQLite: synchronous, bounded by the connection's busy timeout (250 ms) when another writer holds the lock.
      await deps.probeDb();
    } catch (err) {
      return { status: 'DOWN', error: (err as Error).message, ...space };
    }
    const failing = deps.writeFault?.() ?? null;
    if (failing) return { status: 'DOWN', error: failing, ...space };
    return { status: 'UP', ...space };
  }

  return {
    attempted(r: AttemptRecord): void {
      const b = bucket(now());
      b.attempts++;
      if (r.outcome === 'delivered') b.delivered++;
    },
    async check() {
      const db = await database();
      const q = deps.queue();
      const queue = { status: (q.depth >= q.max * 0.9 ? 'DEGRADED' : 'UP') as Level, depth: q.depth, max: q.max };
      const th = deps.threads();
      const { error, ...counts } = th;
      const workers = error ? { status: 'DOWN' as Level, ...counts, error } : { status: 'UP' as Level, ...counts };
      const since = now() - WINDOW_MS;
      let attempts = 0;
      let delivered = 0;
      for (const b of buckets) {
        if (b.start >= since) {
          attempts += b.attempts;
          delivered += b.delivered;
        }
      }
      const rate = attempts === 0 ? null : delivered / attempts;
      const callbacks = {
        status: (rate !== null && attempts >= 20 && rate < 0.5 ? 'DEGRADED' : 'UP') as Level,
        attempts_5m: attempts,
        delivered_5m: delivered,
        success_rate_5m: rate === null ? null : Math.round(rate * 1000) / 1000,
      };
      const br = deps.authorizer?.() ?? null;
      // An open breaker means decisions come from the offline rules: working, but degraded.
      const authorizer = br ? { status: (br.state === 'closed' ? 'UP' : 'DEGRADED') as Level, breaker: br.state, opened: br.opened } : null;
      const parts = [db.status, queue.status, workers.status, callbacks.status, ...(authorizer ? [authorizer.status] : [])];
      const status: Level = db.status === 'DOWN' || workers.status === 'DOWN' ? 'DOWN' : parts.includes('DEGRADED') ? 'DEGRADED' : 'UP';
      return { status, components: { database: db, queue, workers, callbacks, ...(authorizer ? { authorizer } : {}) } };
    },
  };
}

export type Health = ReturnType<typeof createHealth>;

/** SQLite errors the probe sees again by itself: a held lock, a read-only file or connection. */
const PROBED = /^SQLITE_(BUSY|LOCKED|READONLY)/;

/**
 * Remembers why the last commit failed when the probe cannot see it again without writing
 * (disk full, I/O errors), until a commit that wrote rows succeeds. Fed by the committer.
 */
export function createWriteWatch() {
  let failing: string | null = null;
  return {
    committed(changes: number): void {
      // An empty commit succeeds even on a full disk: only one that wrote clears the fault.
      if (changes > 0) failing = null;
    },
    failed(err: unknown): void {
      const code = String((err as { code?: unknown }).code ?? '');
      if (!PROBED.test(code)) failing = (err as Error).message;
    },
    fault: (): string | null => failing,
  };
}
