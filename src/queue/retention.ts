import type { Logger } from 'pino';
import type { Committer } from './committer.ts';
import type { Db } from './db.ts';

// Prunes what the site no longer needs (SPEC §3 retention): finished requests older than
// RETENTION_DAYS with their callback attempts, and expired idempotency keys. Small batches,
// each its own group-commit op, so the write lock is never held long and accepts go on
// between batches.

export interface RetentionDeps {
  db: Db;
  committer: Committer;
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
  const { db, committer, log } = deps;
  const now = deps.now ?? Date.now;
  const batchSize = deps.batchSize ?? 500;
  const intervalMs = deps.intervalMs ?? 10 * 60_000;

  const pruneRequests = db.prepare(`DELETE FROM charging_requests WHERE id IN (
      SELECT id FROM charging_requests WHERE finished_at IS NOT NULL AND finished_at < ? AND state IN ('delivered','failed')
      ORDER BY finished_at LIMIT ?)
    RETURNING id`).pluck();
  const pruneAttempts = db.prepare('DELETE FROM callback_attempts WHERE request_id IN (SELECT value FROM json_each(?))');
  const pruneKeys = db.prepare('DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ?)');
  // Receivers nobody has called back within RETENTION_DAYS (any client may name a new
  // origin, so the table would otherwise only grow). A request waits far less than that
  // between attempts, so an origin with open requests always has a recent attempt.
  const pruneOrigins = db.prepare('DELETE FROM callback_origins WHERE rowid IN (SELECT rowid FROM callback_origins WHERE last_attempt_at < ? LIMIT ?)');

  let timer: NodeJS.Timeout | null = null;
  let running: Promise<Pruned> | null = null;
  // Set by stop(): a run ends after the batch in hand, since a first prune of a large
  // backlog can take minutes and stop() must keep the promised shutdown time. What is
  // left is pruned by the next run after a restart.
  let stopped = false;

  async function batches(op: () => number): Promise<number> {
    let total = 0;
    for (;;) {
      if (stopped) return total;
      const n = await committer.run(op);
      total += n;
      if (n < batchSize) return total;
      // Let the accepts and deliveries queued meanwhile have the next commit.
      await new Promise((r) => setImmediate(r));
    }
  }

  async function runOnce(): Promise<Pruned> {
    const cutoff = now() - deps.retentionDays * 86_400_000;
    const requests = await batches(() => {
      const ids = pruneRequests.all(cutoff, batchSize) as string[];
      if (ids.length) pruneAttempts.run(JSON.stringify(ids));
      return ids.length;
    });
    const keyCutoff = now() - deps.idempotencyTtlMs;
    const keys = await batches(() => pruneKeys.run(keyCutoff, batchSize).changes);
    const origins = await batches(() => pruneOrigins.run(cutoff, batchSize).changes);
    if (requests || keys || origins) {
      // Hand the freed WAL pages back to the main file without waiting on readers.
      db.pragma('wal_checkpoint(PASSIVE)');
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
