import { hostname } from 'node:os';
import type { Sql, TransactionSql } from 'postgres';
import { originOf } from '../../core/origin.ts';
import { hashToken, maskToken } from '../../core/token.ts';
import type { RequestView } from '../../core/types.ts';
import { UNKNOWN_TOKENS_MAX, type Decided } from '../authcache.ts';
import type { CommitterHooks } from '../committer.ts';
import { IDEMPOTENCY_TTL_MS } from '../intake.ts';
import type {
  AcceptOutcome, AttemptRecord, Claim, ClaimedRow, ClaimRequest, ClaimResult, DecisionWrite, KeyHit, NewRequest, PruneKind,
  Queue,
} from '../queue.ts';
import { createPgBound } from './bound.ts';
import { createCredits } from './credits.ts';
import { createPgGroup } from './group.ts';
import { decideFacts } from './facts.ts';
import { createPgKeys } from './keys.ts';
import { holdLife, releaseDeadInstances } from './instances.ts';
import { pgRequestView } from './reads.ts';

// The PostgreSQL queue: the same operations as SQLite's (src/queue/sqlite.ts), for several
// instances on one database. Claims take rows with FOR UPDATE SKIP LOCKED in due order, so
// two instances never claim the same row; leases carry the owning instance (locked_by) and
// are fenced as in SQLite (claim_count + locked_at: a write that changes no row means the
// row is not ours any more). QUEUE_MAX_SIZE holds across instances through the room each
// instance takes in blocks (credits.ts): an accept locks nothing shared. Instances wake each other with
// NOTIFY when they leave work in the table for anyone to claim.

/** The channel instances NOTIFY on when rows became claimable by anyone. */
export const WAKE_CHANNEL = 'chargegate_queue';

/** How often dead instances are looked for. */
const REAP_MS = 5000;
const CLAIMED_COLUMNS = ['id', 'station_id', 'driver_token', 'token_type', 'callback_url', 'origin', 'client', 'state', 'attempts',
  'round_start_attempts', 'claim_count', 'decision_status'];
const CLAIMED = CLAIMED_COLUMNS.join(', ');
const CLAIMED_R = CLAIMED_COLUMNS.map((c) => `r.${c}`).join(', ');

export interface PgQueueOptions {
  /** The database URL without its password (logs). */
  where: string;
  /** QUEUE_MAX_SIZE: open requests across every instance. */
  maxOpen: number;
  maxCacheEntries: number;
  /** unknown_tokens' bound (tests); default UNKNOWN_TOKENS_MAX. */
  maxUnknown?: number;
  keysRequired: boolean;
  now?: () => number;
  hooks?: CommitterHooks;
  /** This instance's id (leases, service_instance). */
  instanceId: string;
  /** A client of one connection of its own: it holds this instance's liveness lock (instances.ts). */
  life: Sql;
}

export async function createPgQueue(sql: Sql, opts: PgQueueOptions): Promise<Queue> {
  const now = opts.now ?? Date.now;
  const me = opts.instanceId;
  // Set by an op that left rows for anyone to claim; the group then NOTIFYs in its own
  // transaction (delivered at commit). Groups in flight at once share it: a wake-up may go
  // out with another group's commit, and the poll covers one that comes too early.
  let notify = false;
  const group = createPgGroup(sql, opts.hooks, async (tx) => {
    if (!notify) return;
    notify = false;
    await tx`SELECT pg_notify(${WAKE_CHANNEL}, ${me})`;
  });
  const keys = await createPgKeys(sql, { required: opts.keysRequired, now });
  // Liveness: a session holds this instance's advisory lock while it lives; another
  // instance that can take the lock knows this one is gone and hands its leases back.
  const life = await holdLife(opts.life, sql, me, { pid: process.pid, host: hostname(), startedAt: now() });
  const credits = createCredits(sql, { me, max: opts.maxOpen, now });
  const cacheBound = createPgBound('authorizer_cache', 'last_used_at', opts.maxCacheEntries);
  const unknownBound = createPgBound('unknown_tokens', 'last_seen_at', opts.maxUnknown ?? UNKNOWN_TOKENS_MAX);
  let listening: { unlisten(): Promise<void> } | null = null;
  let onWake: () => void = () => undefined;
  // Instances that died: their leases are handed back as soon as their session is gone,
  // rather than when the leases expire.
  const reaper = setInterval(() => {
    life.check().then((lost) => {
      // Others may have taken this instance for dead meanwhile and dropped its credits row.
      if (lost) credits.reset();
      return releaseDeadInstances(sql, me, now());
    }).then((r) => {
      if (r.released > 0) onWake();
    }, () => undefined);
  }, REAP_MS);
  reaper.unref();

  const wake = () => {
    notify = true;
  };

  async function insertRow(tx: TransactionSql, row: NewRequest, leaseMs: number | null): Promise<void> {
    const origin = row.origin ?? originOf(row.callback_url);
    const claimed = leaseMs !== null;
    // The room for it was taken beforehand (credits): nothing shared is locked here.
    await tx`INSERT INTO charging_requests
      (id, station_id, driver_token, token_hash, token_mask, token_type, callback_url, origin, client, state,
       created_at, updated_at, due_at, locked_at, locked_by, claim_count)
      VALUES (${row.id}, ${row.station_id}, ${row.driver_token}, ${row.token_hash}, ${row.token_mask},
        ${row.token_type ?? 'RFID'}, ${row.callback_url}, ${origin}, ${row.client ?? null}, ${claimed ? 'authorizing' : 'queued'},
        ${row.created_at}, ${row.created_at}, ${claimed ? row.created_at + leaseMs : row.created_at},
        ${claimed ? row.created_at : null}, ${claimed ? me : null}, ${claimed ? 1 : 0})`;
  }

  async function acceptOp(tx: TransactionSql, row: NewRequest, key: string | null, bodyHash: string | null,
    leaseMs: number | null): Promise<AcceptOutcome> {
    if (key !== null) {
      // The key is unique across instances: a key another instance committed first (and
      // not yet expired) answers for this request, which is then not written.
      const expired = row.created_at - IDEMPOTENCY_TTL_MS;
      const got = await tx`INSERT INTO idempotency_keys (key, body_hash, request_id, created_at)
        VALUES (${key}, ${bodyHash!}, ${row.id}, ${row.created_at})
        ON CONFLICT (key) DO UPDATE SET body_hash = excluded.body_hash, request_id = excluded.request_id,
          created_at = excluded.created_at
        WHERE idempotency_keys.created_at < ${expired}
        RETURNING key`;
      if (got.length === 0) {
        const [first] = await tx<KeyHit[]>`SELECT body_hash, request_id FROM idempotency_keys WHERE key = ${key}`;
        return first!;
      }
    }
    await insertRow(tx, row, leaseMs);
    if (leaseMs === null) wake();
    return null;
  }

  async function claimUndecided(tx: TransactionSql, at: number, limit: number, leaseMs: number): Promise<ClaimedRow[]> {
    if (limit <= 0) return [];
    const text = `UPDATE charging_requests r
      SET state = 'authorizing', locked_at = $1, locked_by = $2, due_at = $1::bigint + $3::bigint,
          claim_count = claim_count + 1, updated_at = $1
      FROM (SELECT id FROM charging_requests WHERE state IN ('queued','authorizing') AND due_at <= $1
            ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) c
      WHERE r.id = c.id
      RETURNING ${CLAIMED_R}`;
    return tx.unsafe(text, [at, me, leaseMs, limit], { prepare: true }) as Promise<ClaimedRow[]>;
  }

  async function claimDeliverable(tx: TransactionSql, req: ClaimRequest, at: number): Promise<ClaimedRow[]> {
    const limit = req.deliverable();
    if (limit <= 0) return [];
    const skip = req.saturated();
    // Candidates locked in due order (rows other instances hold are skipped); those whose
    // origin has no room here are unlocked again at commit, untouched.
    const rows = await tx<Array<{ id: string; origin: string }>>`SELECT id, origin FROM charging_requests
      WHERE state = 'delivering' AND due_at <= ${at} AND NOT (origin = ANY(${skip}::text[]))
      ORDER BY due_at LIMIT ${limit * 2} FOR UPDATE SKIP LOCKED`;
    const ids: string[] = [];
    const full = new Set<string>();
    for (const r of rows) {
      if (ids.length >= limit) break;
      if (full.has(r.origin)) continue;
      if (!req.take(r.origin)) {
        full.add(r.origin);
        continue;
      }
      ids.push(r.id);
    }
    if (ids.length === 0) return [];
    const text = `UPDATE charging_requests
      SET locked_at = $1, locked_by = $2, due_at = $1::bigint + $3::bigint, claim_count = claim_count + 1, updated_at = $1
      WHERE id = ANY($4::text[]) RETURNING ${CLAIMED}`;
    return tx.unsafe(text, [at, me, req.leaseMs, ids], { prepare: true }) as Promise<ClaimedRow[]>;
  }

  type Want = { undecided: boolean; deliverable: boolean };
  async function nextDue(tx: TransactionSql, want: Want, skip: string[]): Promise<number | null> {
    const [r] = await tx<Array<{ a: number | null; b: number | null }>>`SELECT
      CASE WHEN ${want.undecided} THEN (SELECT MIN(due_at) FROM charging_requests
        WHERE state IN ('queued','authorizing')) END AS a,
      CASE WHEN ${want.deliverable} THEN (SELECT MIN(due_at) FROM charging_requests
        WHERE state = 'delivering' AND NOT (origin = ANY(${skip}::text[]))) END AS b`;
    const a = r?.a ?? null;
    const b = r?.b ?? null;
    return a === null ? b : b === null ? a : Math.min(a, b);
  }

  async function recordAuth(tx: TransactionSql, decisions: DecisionWrite['decision'][], requests: Map<string, Decided>, at: number) {
    // Each write tells whether it added a row (xmax = 0: inserted, not updated): the bounds count those.
    type Added = Array<{ added: boolean }>;
    const cache: Promise<Added>[] = [];
    const unknown: Promise<Added>[] = [];
    for (const d of decisions) {
      if (d.cache_put) {
        const c = d.cache_put;
        cache.push(tx<Added>`INSERT INTO authorizer_cache
            (token_hash, token_type, station_id, status, reason, stored_at, fresh_until, last_used_at)
          VALUES (${c.token_hash}, ${c.token_type}, ${c.station_id}, ${c.status}, ${c.reason}, ${c.stored_at}, ${c.fresh_until}, ${at})
          ON CONFLICT (token_hash, token_type, station_id) DO UPDATE SET status = excluded.status, reason = excluded.reason,
            stored_at = excluded.stored_at, fresh_until = excluded.fresh_until, last_used_at = excluded.last_used_at
          RETURNING (xmax = 0) AS added`);
      } else if (d.cache_used) {
        const c = d.cache_used;
        cache.push(tx<Added>`UPDATE authorizer_cache SET last_used_at = ${at}
          WHERE token_hash = ${c.token_hash} AND token_type = ${c.token_type} AND station_id = ${c.station_id}
          RETURNING false AS added`);
      }
      const req = requests.get(d.id);
      if (d.unknown_token && req?.driver_token) {
        unknown.push(tx<Added>`INSERT INTO unknown_tokens
            (token_hash, station_id, token_mask, seen_count, first_seen_at, last_seen_at, last_status, last_reason, last_request_id)
          VALUES (${hashToken(req.driver_token)}, ${req.station_id.toLowerCase()}, ${maskToken(req.driver_token)}, 1, ${at}, ${at},
            ${d.status}, ${d.reason}, ${d.id})
          ON CONFLICT (token_hash, station_id) DO UPDATE SET seen_count = unknown_tokens.seen_count + 1,
            last_seen_at = excluded.last_seen_at, last_status = excluded.last_status, last_reason = excluded.last_reason,
            last_request_id = excluded.last_request_id
          RETURNING (xmax = 0) AS added`);
      }
    }
    const added = async (writes: Promise<Added>[]) => (await Promise.all(writes)).filter(([r]) => r?.added).length;
    const [newCache, newUnknown] = await Promise.all([added(cache), added(unknown)]);
    if (cache.length > 0) await cacheBound.after(tx, newCache);
    if (unknown.length > 0) await unknownBound.after(tx, newUnknown);
  }

  const prunes: Record<PruneKind, (tx: TransactionSql, cutoff: number, limit: number) => Promise<number>> = {
    async requests(tx, cutoff, limit) {
      const ids = await tx<Array<{ id: string }>>`DELETE FROM charging_requests WHERE id IN (
          SELECT id FROM charging_requests WHERE finished_at IS NOT NULL AND finished_at < ${cutoff} AND state IN ('delivered','failed')
          ORDER BY finished_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        RETURNING id`;
      if (ids.length) await tx`DELETE FROM callback_attempts WHERE request_id = ANY(${ids.map((r) => r.id)}::text[])`;
      return ids.length;
    },
    async keys(tx, cutoff, limit) {
      const r = await tx`DELETE FROM idempotency_keys WHERE key IN (
        SELECT key FROM idempotency_keys WHERE created_at < ${cutoff} LIMIT ${limit} FOR UPDATE SKIP LOCKED)`;
      return r.count;
    },
    async origins(tx, cutoff, limit) {
      const r = await tx`DELETE FROM callback_origins WHERE origin IN (
        SELECT origin FROM callback_origins WHERE last_attempt_at < ${cutoff} LIMIT ${limit} FOR UPDATE SKIP LOCKED)`;
      return r.count;
    },
  };

  return {
    engine: 'postgres',
    where: opts.where,
    async accept(row: NewRequest, key: string | null, bodyHash: string | null, leaseMs: number | null): Promise<AcceptOutcome> {
      if (!(await credits.take())) return 'full';
      // Unless the op surely wrote nothing, its credit stays spent (counted until the next grant).
      let written = true;
      try {
        const outcome = await group.run(async (tx) => acceptOp(tx, row, key, bodyHash, leaseMs));
        written = outcome === null;
        return outcome;
      } finally {
        credits.settle(written);
      }
    },
    async findKey(key, notBefore) {
      const [r] = await sql<KeyHit[]>`SELECT body_hash, request_id FROM idempotency_keys WHERE key = ${key} AND created_at >= ${notBefore}`;
      return r ?? null;
    },
    claim(req: ClaimRequest): Promise<ClaimResult> {
      return group.run(async (tx) => {
        const limit = req.reserve();
        const undecided = await claimUndecided(tx, req.now, limit, req.leaseMs);
        const deliverable = await claimDeliverable(tx, req, req.now);
        let next: number | null = null;
        if (!(limit > 0 && undecided.length === limit)) next = await nextDue(tx, req.wantNext(), req.saturated());
        return { undecided, deliverable, next };
      });
    },
    recordDecisions(writes: DecisionWrite[], requests: Map<string, Decided>, at: number): Promise<boolean[]> {
      return group.run(async (tx) => {
        const ok = await Promise.all(writes.map(async (w) => {
          const d = w.decision;
          const r = await tx`UPDATE charging_requests
            SET state = 'delivering', decision_status = ${d.status}, decision_reason = ${d.reason}, decision_source = ${d.source},
                decision_latency_ms = ${d.latency_ms}, decided_at = ${at}, updated_at = ${at},
                locked_at = CASE WHEN ${w.keep} THEN locked_at ELSE NULL END,
                locked_by = CASE WHEN ${w.keep} THEN locked_by ELSE NULL END,
                due_at = CASE WHEN ${w.keep} THEN due_at ELSE ${at}::bigint END
            WHERE id = ${w.claim.id} AND claim_count = ${w.claim.claim} AND locked_at IS NOT NULL AND state = 'authorizing'`;
          return r.count === 1;
        }));
        if (writes.some((w, i) => ok[i] && !w.keep)) wake();
        await recordAuth(tx, writes.filter((_w, i) => ok[i]).map((w) => w.decision), requests, at);
        return ok;
      });
    },
    recordAttempts(origin: string, records: AttemptRecord[], claims: number[], at: number): Promise<boolean[]> {
      return group.run(async (tx) => {
        const ok = await Promise.all(records.map(async (r, i) => {
          const status = r.http_status !== null ? `HTTP ${r.http_status}` : null;
          const lastError = r.outcome === 'delivered' ? null : (r.failure ?? r.error ?? status);
          // The attempt row is written only when the fenced update changed the request.
          const done = await tx`WITH u AS (
              UPDATE charging_requests
              SET attempts = ${r.attempt}, updated_at = ${at}, locked_at = NULL, locked_by = NULL,
                  state = CASE ${r.outcome}::text WHEN 'delivered' THEN 'delivered' WHEN 'failed' THEN 'failed' ELSE 'delivering' END,
                  due_at = CASE WHEN ${r.outcome}::text = 'retry' THEN ${r.next_due_at}::bigint ELSE due_at END,
                  finished_at = CASE WHEN ${r.outcome}::text = 'retry' THEN NULL ELSE ${at}::bigint END,
                  driver_token = CASE WHEN ${r.outcome}::text = 'delivered' THEN NULL ELSE driver_token END,
                  last_error = ${lastError}
              WHERE id = ${r.id} AND claim_count = ${claims[i]!} AND locked_at IS NOT NULL AND state = 'delivering'
              RETURNING id)
            INSERT INTO callback_attempts (request_id, attempt, started_at, duration_ms, http_status, error, outcome)
            SELECT id, ${r.attempt}, ${r.started_at}, ${r.duration_ms}, ${r.http_status}, ${r.error}, ${r.outcome} FROM u`;
          return done.count === 1;
        }));
        const mine = records.filter((_r, i) => ok[i]);
        if (mine.some((r) => r.outcome === 'retry')) wake();
        if (mine.length > 0) {
          let delivered = 0;
          let failures = 0;
          for (const a of mine) {
            if (a.outcome === 'delivered') {
              delivered++;
              failures = 0;
            } else failures++;
          }
          const last = mine[mine.length - 1]!;
          const status = last.http_status !== null ? String(last.http_status) : last.error;
          await tx`INSERT INTO callback_origins
              (origin, attempts, delivered, consecutive_failures, last_status, last_attempt_at, last_delivered_at)
            VALUES (${origin}, ${mine.length}, ${delivered}, ${failures}, ${status}, ${at}, ${delivered > 0 ? at : null})
            ON CONFLICT (origin) DO UPDATE SET attempts = callback_origins.attempts + excluded.attempts,
              delivered = callback_origins.delivered + excluded.delivered,
              consecutive_failures = CASE WHEN ${delivered > 0} THEN excluded.consecutive_failures
                                          ELSE callback_origins.consecutive_failures + excluded.consecutive_failures END,
              last_status = excluded.last_status, last_attempt_at = excluded.last_attempt_at,
              last_delivered_at = COALESCE(excluded.last_delivered_at, callback_origins.last_delivered_at)`;
        }
        return ok;
      });
    },
    release(claims: Claim[], at: number, due = at): Promise<number> {
      if (claims.length === 0) return Promise.resolve(0);
      return group.run(async (tx) => {
        const r = await tx`UPDATE charging_requests r
          SET locked_at = NULL, locked_by = NULL, due_at = ${due}, updated_at = ${at},
              state = CASE WHEN decision_status IS NULL THEN 'queued' ELSE state END
          FROM unnest(${claims.map((c) => c.id)}::text[], ${claims.map((c) => c.claim)}::int[]) AS c(id, claim)
          WHERE r.id = c.id AND r.claim_count = c.claim AND r.locked_at IS NOT NULL AND r.state IN ('queued','authorizing','delivering')`;
        if (r.count > 0) wake();
        return r.count;
      });
    },
    async countOpen() {
      const [r] = await sql<Array<{ n: number }>>`SELECT COUNT(*)::int AS n FROM charging_requests WHERE state IN ('queued','authorizing','delivering')`;
      return r!.n;
    },
    async countOpenByClient() {
      const rows = await sql<Array<{ client: string; n: number }>>`SELECT client, COUNT(*)::int AS n FROM charging_requests
        WHERE state IN ('queued','authorizing','delivering') AND client IS NOT NULL GROUP BY client`;
      return new Map(rows.map((r) => [r.client, r.n]));
    },
    async oldestOpenCreatedAt() {
      const [r] = await sql<Array<{ at: number | null }>>`SELECT MIN(created_at) AS at FROM charging_requests WHERE state IN ('queued','authorizing','delivering')`;
      return r?.at ?? null;
    },
    async countFailed() {
      const [r] = await sql<Array<{ n: number }>>`SELECT COUNT(*)::int AS n FROM charging_requests WHERE state = 'failed'`;
      return r!.n;
    },
    status(id: string): Promise<RequestView | null> {
      return pgRequestView(sql, id);
    },
    prune(kind: PruneKind, cutoff: number, limit: number): Promise<number> {
      return group.run((tx) => prunes[kind](tx, cutoff, limit));
    },
    async compact() {
      // Autovacuum takes care of dead rows.
    },
    async probe() {
      const [r] = await sql<Array<{ standby: boolean }>>`SELECT pg_is_in_recovery() AS standby`;
      if (r!.standby) throw new Error('the database is a read-only standby');
    },
    async freeBytes() {
      return null;
    },
    keys,
    decideFacts: (items, withCache) => decideFacts(sql, items, withCache),
    get pending() {
      return group.pending;
    },
    unsettled: 0,
    watch(wake: () => void): void {
      onWake = wake;
      void sql.listen(WAKE_CHANNEL, (from) => {
        if (from !== me) wake();
      }).then((l) => {
        listening = l;
      }, () => undefined);
    },
    async close() {
      clearInterval(reaper);
      await keys.stop();
      await keys.flushUsage().catch(() => undefined);
      await credits.stop();
      await group.drain();
      await listening?.unlisten().catch(() => undefined);
      await sql`DELETE FROM queue_credit WHERE instance_id = ${me}`.catch(() => undefined);
      await sql`DELETE FROM service_instance WHERE id = ${me}`.catch(() => undefined);
      await life.release().catch(() => undefined);
      await sql.end({ timeout: 5 });
    },
  };
}

