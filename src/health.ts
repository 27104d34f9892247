import type { AttemptRecord } from './queue/store.ts';

// GET /health (SPEC §1). The rules, also in the README:
// - database: DOWN when a write (the heartbeat row) cannot be committed (disk full, read-only,
//   locked), or the WAL was deleted under the service, else UP.
// - queue: DEGRADED at or above 90% of QUEUE_MAX_SIZE (new requests about to get 503), else UP.
// - workers: DOWN with no thread alive, DEGRADED with fewer than configured, else UP.
// - authorizer (only with AUTHORIZER_URL): DEGRADED while its circuit breaker is open or
//   half-open (decisions come from the offline rules).
// - callbacks: DEGRADED when, over the last 5 minutes, at least 20 attempts were made and
//   fewer than half were delivered; never DOWN (receivers' outages are not ours).
// Overall: DOWN if database or workers are DOWN, else DEGRADED if any part is, else UP.

export type Level = 'UP' | 'DEGRADED' | 'DOWN';

export interface HealthDeps {
  /** Opens and commits a write transaction. */
  probeDb(): Promise<unknown>;
  /** A database fault known without probing (the WAL deleted under the service), or null. */
  fault?: () => string | null;
  queue(): { depth: number; max: number };
  threads(): { alive: number; configured: number };
  /** The upstream authorizer's breaker; null when no upstream is configured. */
  authorizer?: () => { state: 'closed' | 'open' | 'half_open'; opened: number } | null;
  now?: () => number;
}

const WINDOW_MS = 5 * 60_000;
const BUCKET_MS = 10_000;
const PROBE_TIMEOUT_MS = 2000;

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

  async function database(): Promise<{ status: Level; error?: string }> {
    const fault = deps.fault?.() ?? null;
    if (fault) return { status: 'DOWN', error: fault };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        deps.probeDb(),
        new Promise((_r, reject) => {
          timer = setTimeout(() => reject(new Error('write probe timed out')), PROBE_TIMEOUT_MS);
        }),
      ]);
      return { status: 'UP' };
    } catch (err) {
      return { status: 'DOWN', error: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
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
      const workers = { status: (th.alive === 0 ? 'DOWN' : th.alive < th.configured ? 'DEGRADED' : 'UP') as Level, ...th };
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
