import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createAuthStore, type Decided } from './authcache.ts';
import { createCommitter, type CommitterHooks } from './committer.ts';
import type { Db } from './db.ts';
import { resign } from './instance.ts';
import { createKeyring } from './keys.ts';
import { createProbe } from './probe.ts';
import type {
  AcceptOutcome, AttemptRecord, Claim, ClaimRequest, ClaimResult, DecisionWrite, NewRequest, PruneKind, Queue,
} from './queue.ts';
import { createReads } from './reads.ts';
import { createStore } from './store.ts';

// The SQLite queue: today's prepared statements (store.ts) run by today's group committer
// (committer.ts). Each operation is one closure in the next IMMEDIATE transaction, exactly
// as the callers wrote them before the interface existed: same transactions, same fsyncs.
// The main thread is the one writer; the reads that need no transaction (findKey, counts)
// run at once, as before.

export interface SqliteQueueOptions {
  /** The file (for logs and free space). */
  path: string;
  /** AUTHORIZER_CACHE_MAX_ENTRIES */
  maxCacheEntries: number;
  /** unknown_tokens' bound (tests); default UNKNOWN_TOKENS_MAX. */
  maxUnknown?: number;
  /** API_KEYS_REQUIRED */
  keysRequired: boolean;
  now?: () => number;
  hooks?: CommitterHooks;
  /** Called by close() once the file is closed (releases the single-instance lock). */
  onClosed?: () => void;
  /** Called by close() first (stops watching the file: closing removes the WAL). */
  onClosing?: () => void;
}

export function createSqliteQueue(db: Db, opts: SqliteQueueOptions): Queue & { readonly db: Db } {
  const store = createStore(db);
  const committer = createCommitter(db, opts.hooks);
  const authStore = createAuthStore(db, {
    maxEntries: opts.maxCacheEntries, ...(opts.maxUnknown ? { maxUnknown: opts.maxUnknown } : {}),
  });
  const keyring = createKeyring(db, { required: opts.keysRequired, ...(opts.now ? { now: opts.now } : {}) });
  const reads = createReads(db);
  const probe = createProbe(db);
  const prune = prunes(db);

  return {
    engine: 'sqlite',
    where: opts.path,
    db,
    // One process serves the file (the lock): the bound and the keys are settled in memory
    // before this runs (depth.ts, intake.ts), so it always writes.
    accept(row: NewRequest, key: string | null, bodyHash: string | null, leaseMs: number | null): Promise<AcceptOutcome> {
      return committer.run(() => {
        if (leaseMs !== null) store.insertClaimed(row, leaseMs);
        else store.insert(row);
        if (key !== null) store.insertKey(key, bodyHash!, row.id, row.created_at);
        return null;
      });
    },
    async findKey(key, notBefore) {
      const hit = store.findKey(key, notBefore);
      // The key's row may be committed but not on disk yet (its WAL fsync under way): the
      // answer names that request only once it is, as its own 202 does. An op of the next
      // group settles after an fsync that covers every earlier commit.
      if (hit === null || committer.unsettled === 0) return hit;
      return committer.run(() => hit);
    },
    claim(req: ClaimRequest): Promise<ClaimResult> {
      return committer.run(() => {
        const limit = req.reserve();
        const undecided = store.claimUndecided(req.now, limit, req.leaseMs);
        const vLimit = req.deliverable();
        const deliverable = vLimit > 0 ? store.claimDeliverable(req.now, vLimit, req.leaseMs, req.saturated(), req.take) : [];
        let next: number | null = null;
        if (!(limit > 0 && undecided.length === limit)) {
          const want = req.wantNext();
          const a = want.undecided ? store.nextUndecided() : null;
          const b = want.deliverable ? store.nextDeliverable(req.saturated()) : null;
          next = a === null ? b : b === null ? a : Math.min(a, b);
        }
        return { undecided, deliverable, next };
      });
    },
    recordDecisions(writes: DecisionWrite[], requests: Map<string, Decided>, now: number): Promise<boolean[]> {
      return committer.run(() => {
        const ok = writes.map((w) => store.recordDecision(w.decision, w.claim, w.keep, now));
        authStore.record(writes.filter((_w, i) => ok[i]).map((w) => w.decision), requests, now);
        return ok;
      });
    },
    recordAttempts(origin: string, records: AttemptRecord[], claims: number[], now: number): Promise<boolean[]> {
      return committer.run(() => {
        const ok = records.map((rec, i) => store.recordAttempt(rec, claims[i]!, now));
        store.recordOrigin(origin, records.filter((_r, i) => ok[i]), now);
        return ok;
      });
    },
    release(claims: Claim[], now: number, due = now): Promise<number> {
      return committer.run(() => store.release(claims, now, due));
    },
    async countOpen() {
      return store.countOpen();
    },
    async countOpenByClient() {
      return store.countOpenByClient();
    },
    async oldestOpenCreatedAt() {
      return store.oldestOpenCreatedAt();
    },
    async countFailed() {
      return store.countFailed();
    },
    async status(id: string) {
      return reads.get(id);
    },
    prune(kind: PruneKind, cutoff: number, limit: number): Promise<number> {
      return committer.run(() => prune[kind](cutoff, limit));
    },
    async compact() {
      // Hand the freed WAL pages back to the main file without waiting on readers.
      db.pragma('wal_checkpoint(PASSIVE)');
    },
    async probe() {
      // Synchronous, bounded by the connection's busy timeout when another writer holds the lock.
      probe();
    },
    freeBytes() {
      return statfs(dirname(opts.path)).then((s) => s.bavail * s.bsize, () => null);
    },
    keys: {
      required: () => keyring.required(),
      verify: (presented: string) => keyring.verify(presented),
      flushUsage: () => committer.run(() => keyring.flushUsage()),
      get pending() {
        return keyring.pending;
      },
    },
    get pending() {
      return committer.pending;
    },
    get unsettled() {
      return committer.unsettled;
    },
    watch() {
      // The only writers beside the service are commands, found by the claim loop's poll.
    },
    async close() {
      opts.onClosing?.();
      await committer.run(() => {
        keyring.flushUsage();
        resign(db);
      }).catch(() => undefined);
      committer.flush();
      db.close();
      opts.onClosed?.();
    },
  };
}

/** Retention's batches (src/queue/retention.ts), as statements prepared once. */
function prunes(db: Db): Record<PruneKind, (cutoff: number, limit: number) => number> {
  const pruneRequests = db.prepare(`DELETE FROM charging_requests WHERE id IN (
      SELECT id FROM charging_requests WHERE finished_at IS NOT NULL AND finished_at < ? AND state IN ('delivered','failed')
      ORDER BY finished_at LIMIT ?)
    RETURNING id`).pluck();
  const pruneAttempts = db.prepare('DELETE FROM callback_attempts WHERE request_id IN (SELECT value FROM json_each(?))');
  const pruneKeys = db.prepare('DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ?)');
  // Receivers nobody has called back within RETENTION_DAYS (any client may name a new
  // origin, so the table would otherwise only grow). A request waits far less than that
  // between attempts, so an origin with open requests always has a recent attempt.
  const pruneOrigins = db.prepare(
    'DELETE FROM callback_origins WHERE rowid IN (SELECT rowid FROM callback_origins WHERE last_attempt_at < ? LIMIT ?)',
  );
  return {
    requests(cutoff, limit) {
      const ids = pruneRequests.all(cutoff, limit) as string[];
      if (ids.length) pruneAttempts.run(JSON.stringify(ids));
      return ids.length;
    },
    keys: (cutoff, limit) => pruneKeys.run(cutoff, limit).changes,
    origins: (cutoff, limit) => pruneOrigins.run(cutoff, limit).changes,
  };
}
