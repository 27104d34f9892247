import type { Logger } from 'pino';
import type { Queue } from './queue.ts';

// Prunes what the site no longer needs (SPEC §3 retention): finished requests older than
// RETENTION_DAYS with their callback attempts, and expired idempotency keys. Small batches,
// each its own group-commit op, so the write lock is never held long and accepts go on
// between batches.

export interface RetentionDeps {
  queue: Pick<Queue, 'prune' | 'compact'>;
  log: Logger;
  retentionDays: number;
  idempotencyTtlMs: number;
  now?: () => number;
  batchSize?: number;
  intervalMs?: number;
}

/** Rows a retention run removed. */
export interface Pruned {
  requests: number;
  keys: number;
  origins: number;
}

export function createRetention(deps: RetentionDeps) {
  const { queue, log } = deps;
  const now = deps.now ?? Date.now;
  const batchSize = deps.batchSize ?? 500;
  const intervalMs = deps.intervalMs ?? 10 * 60_000;

  let timer: NodeJS.Timeout | null = null;
  let running: Promise<Pruned> | null = null;
  // Set by stop(): a run ends after the batch in hand, since a first prune of a large
  // backlog can take minutes and stop() must keep the promised shutdown time. What is
  // left is pruned by the next run after a restart.
  let stopped = false;

  async function batches(op: () => Promise<number>): Promise<number> {
    let total = 0;
    for (;;) {
      if (stopped) return total;
      const n = await op();
      total += n;
      if (n < batchSize) return total;
      // Let the accepts and deliveries queued meanwhile have the next commit.
      await new Promise((r) => setImmediate(r));
    }
  }

  async function runOnce(): Promise<Pruned> {
    const cutoff = now() - deps.retentionDays * 86_400_000;
    const requests = await batches(() => queue.prune('requests', cutoff, batchSize));
    const keyCutoff = now() - deps.idempotencyTtlMs;
    const keys = await batches(() => queue.prune('keys', keyCutoff, batchSize));
    const origins = await batches(() => queue.prune('origins', cutoff, batchSize));
    if (requests || keys || origins) {
      await queue.compact();
      log.info({ pruned_requests: requests, pruned_idempotency_keys: keys, pruned_origins: origins, retention_days: deps.retentionDays, ...(stopped ? { stopped_early: true } : {}) }, 'retention pruned');
    }
    return { requests, keys, origins };
  }

  function tick(): void {
    running ??= runOnce()
      .catch((err) => {
        log.warn({ err: String(err) }, 'retention run failed; will retry');
        return { requests: 0, keys: 0, origins: 0 };
      })
      .finally(() => {
        running = null;
      });
  }

  return {
    runOnce,
    start(): void {
      tick();
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    /** Ends the run under way after its current batch, and any further runs. */
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
  };
}
