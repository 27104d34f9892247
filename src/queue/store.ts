import type { Decision, DecisionStatus, RequestState, TokenType } from '../core/types.ts';
import { originOf } from '../core/origin.ts';
import type { Db } from './db.ts';

// Every queue operation as one prepared statement, prepared once. No method opens a
// transaction: the committer wraps a whole tick of them in one (group commit).

export interface NewRequest {
  id: string;
  station_id: string;
  driver_token: string;
  token_hash: string;
  token_mask: string;
  /** RFID when left out. */
  token_type?: TokenType;
  callback_url: string;
  /** scheme://host[:port] of callback_url (src/core/origin.ts); derived when left out. */
  origin?: string;
  /** The API key name the request came with; null without keys. */
  client?: string | null;
  created_at: number;
}

export interface ClaimedRow {
  id: string;
  station_id: string;
  driver_token: string | null;
  token_type: TokenType;
  callback_url: string;
  origin: string;
  client: string | null;
  state: RequestState;
  attempts: number;
  /** attempts before the current replay round (0 without replays). */
  round_start_attempts: number;
  /** The fencing token: every write for this claim is conditioned on it. */
  claim_count: number;
  decision_status: DecisionStatus | null;
}

/** A claimed row as the dispatcher holds it: id plus the claim its writes are fenced by. */
export interface Claim {
  id: string;
  claim: number;
}

export interface AttemptRecord {
  id: string;
  attempt: number;
  started_at: number;
  duration_ms: number;
  http_status: number | null;
  error: string | null;
  outcome: 'delivered' | 'retry' | 'failed';
  /** When the next attempt is due (retry only). */
  next_due_at: number | null;
  /** Why the request failed, when outcome is failed. */
  failure: string | null;
}

const OPEN = "state IN ('queued','authorizing','delivering')";
const CLAIMED = 'id, station_id, driver_token, token_type, callback_url, origin, client, state, attempts, round_start_attempts, claim_count, decision_status';
// A write for a claimed row lands only while that claim holds: a row released (shutdown,
// takeover) or claimed again (lease expired) has locked_at NULL or a new claim_count.
const FENCE = 'id = @id AND claim_count = @claim AND locked_at IS NOT NULL';

/** A row with what may be left out filled in; the accept path gives everything, and gets its own object back. */
function complete(row: NewRequest): Required<NewRequest> {
  if (row.origin !== undefined && row.client !== undefined && row.token_type !== undefined) return row as Required<NewRequest>;
  return { ...row, origin: row.origin ?? originOf(row.callback_url), client: row.client ?? null, token_type: row.token_type ?? 'RFID' };
}

export function createStore(db: Db) {
  const insert = db.prepare(`INSERT INTO charging_requests
    (id, station_id, driver_token, token_hash, token_mask, token_type, callback_url, origin, client, state, created_at, updated_at, due_at)
    VALUES (@id, @station_id, @driver_token, @token_hash, @token_mask, @token_type, @callback_url, @origin, @client, 'queued',
            @created_at, @created_at, @created_at)`);
  // Inserted already claimed, for the dispatcher to take straight from the accept path:
  // one write and one commit fewer per request than insert-then-claim.
  const insertClaimed = db.prepare(`INSERT INTO charging_requests
    (id, station_id, driver_token, token_hash, token_mask, token_type, callback_url, origin, client, state, created_at, updated_at, due_at,
     locked_at, claim_count)
    VALUES (@id, @station_id, @driver_token, @token_hash, @token_mask, @token_type, @callback_url, @origin, @client, 'authorizing',
            @created_at, @created_at,
            @created_at + @lease, @created_at, 1)`);

  // Claims by due_at, which is the lease expiry while a row is claimed: an expired lease
  // is claimable again however old the row is (never by created_at). The decision lane
  // takes undecided rows only, through their own index.
  const claimUndecided = db.prepare(`UPDATE charging_requests
    SET state = 'authorizing', locked_at = @now, due_at = @now + @lease, claim_count = claim_count + 1, updated_at = @now
    WHERE id IN (SELECT id FROM charging_requests INDEXED BY charging_requests_undecided
                 WHERE state IN ('queued','authorizing') AND due_at <= @now ORDER BY due_at LIMIT @limit)
    RETURNING ${CLAIMED}`);
  // The delivery lane looks at due rows in due order, skipping origins at their bound
  // (index-only: origin is in the index), and the dispatcher picks within each origin's room.
  const deliverable = db.prepare(`SELECT id, origin FROM charging_requests INDEXED BY charging_requests_deliverable
    WHERE state = 'delivering' AND due_at <= @now AND origin NOT IN (SELECT value FROM json_each(@skip))
    ORDER BY due_at LIMIT @limit`);
  const claimIds = db.prepare(`UPDATE charging_requests
    SET locked_at = @now, due_at = @now + @lease, claim_count = claim_count + 1, updated_at = @now
    WHERE id IN (SELECT value FROM json_each(@ids)) AND state = 'delivering' AND due_at <= @now
    RETURNING ${CLAIMED}`);

  // The lease taken at claim time already covers decision and delivery, so a decision
  // whose delivery starts now leaves due_at alone (one index entry fewer rewritten per
  // request). One whose origin has no room is handed back: it waits in the table, due now.
  const decide = db.prepare(`UPDATE charging_requests
    SET state = 'delivering', decision_status = @status, decision_reason = @reason, decision_source = @source,
        decision_latency_ms = @latency_ms, decided_at = @now, updated_at = @now,
        locked_at = CASE WHEN @keep THEN locked_at ELSE NULL END,
        due_at = CASE WHEN @keep THEN due_at ELSE @now END
    WHERE ${FENCE} AND state = 'authorizing'`);

  const attemptInsert = db.prepare(`INSERT INTO callback_attempts
    (request_id, attempt, started_at, duration_ms, http_status, error, outcome)
    VALUES (@id, @attempt, @started_at, @duration_ms, @http_status, @error, @outcome)`);

  // A retry leaves the lease and waits until due; a final outcome drops the full token
  // once delivered (SPEC §3). A failed row keeps it so an admin replay can re-send it.
  const attemptUpdate = db.prepare(`UPDATE charging_requests
    SET attempts = @attempt, updated_at = @now, locked_at = NULL,
        state = CASE @outcome WHEN 'delivered' THEN 'delivered' WHEN 'failed' THEN 'failed' ELSE 'delivering' END,
        due_at = CASE @outcome WHEN 'retry' THEN @next_due_at ELSE due_at END,
        finished_at = CASE WHEN @outcome = 'retry' THEN NULL ELSE @now END,
        driver_token = CASE WHEN @outcome = 'delivered' THEN NULL ELSE driver_token END,
        last_error = @last_error
    WHERE ${FENCE} AND state = 'delivering'`);

  const originUpsert = db.prepare(`INSERT INTO callback_origins
    (origin, attempts, delivered, consecutive_failures, last_status, last_attempt_at, last_delivered_at)
    VALUES (@origin, @attempts, @delivered, @failures, @status, @at, CASE WHEN @delivered > 0 THEN @at END)
    ON CONFLICT (origin) DO UPDATE SET attempts = attempts + excluded.attempts, delivered = delivered + excluded.delivered,
      consecutive_failures = CASE WHEN @last_delivered THEN excluded.consecutive_failures
                                  ELSE consecutive_failures + excluded.consecutive_failures END,
      last_status = excluded.last_status, last_attempt_at = excluded.last_attempt_at,
      last_delivered_at = COALESCE(excluded.last_delivered_at, last_delivered_at)`);

  // Hands claimed rows back (shutdown, a task cancelled before it ran), due at @due.
  const release = db.prepare(`UPDATE charging_requests
    SET locked_at = NULL, due_at = @due, updated_at = @now,
        state = CASE WHEN decision_status IS NULL THEN 'queued' ELSE state END
    WHERE ${FENCE} AND ${OPEN}`);

  // REPLACE: an expired key may still be in the table until the retention job prunes it.
  const keyInsert = db.prepare('INSERT OR REPLACE INTO idempotency_keys (key, body_hash, request_id, created_at) VALUES (?, ?, ?, ?)');
  const keyFind = db.prepare('SELECT body_hash, request_id FROM idempotency_keys WHERE key = ? AND created_at >= ?');

  // Both lane indexes carry created_at: the oldest open request is found from the index
  // entries alone (no table reads), bounded by QUEUE_MAX_SIZE.
  const oldestUndecided = db.prepare(`SELECT MIN(created_at) FROM charging_requests INDEXED BY charging_requests_undecided
    WHERE state IN ('queued','authorizing')`).pluck();
  const oldestDeliverable = db.prepare(`SELECT MIN(created_at) FROM charging_requests INDEXED BY charging_requests_deliverable
    WHERE state = 'delivering'`).pluck();
  const countFailed = db.prepare("SELECT COUNT(*) FROM charging_requests WHERE state = 'failed'").pluck();

  // Through the two lane indexes: a plain state filter would scan the whole table (every
  // finished row kept for RETENTION_DAYS) on each resync.
  const openByClient = db.prepare(`SELECT client, COUNT(*) AS n FROM (
      SELECT client FROM charging_requests INDEXED BY charging_requests_undecided WHERE state IN ('queued','authorizing')
      UNION ALL
      SELECT client FROM charging_requests INDEXED BY charging_requests_deliverable WHERE state = 'delivering')
    WHERE client IS NOT NULL GROUP BY client`);
  const countOpen = db.prepare(`SELECT
      (SELECT COUNT(*) FROM charging_requests INDEXED BY charging_requests_undecided WHERE state IN ('queued','authorizing'))
    + (SELECT COUNT(*) FROM charging_requests INDEXED BY charging_requests_deliverable WHERE state = 'delivering')`).pluck();
  const nextUndecided = db.prepare("SELECT MIN(due_at) FROM charging_requests WHERE state IN ('queued','authorizing')").pluck();
  const nextDeliverable = db.prepare(`SELECT MIN(due_at) FROM charging_requests INDEXED BY charging_requests_deliverable
    WHERE state = 'delivering' AND origin NOT IN (SELECT value FROM json_each(?))`).pluck();

  return {
    insert(row: NewRequest): void {
      insert.run(complete(row));
    },
    /** Inserts the row claimed under a lease of leaseMs from its created_at. */
    insertClaimed(row: NewRequest, leaseMs: number): void {
      insertClaimed.run({ ...complete(row), lease: leaseMs });
    },
    /** Claims up to limit undecided rows that are due, oldest due first. */
    claimUndecided(now: number, limit: number, leaseMs: number): ClaimedRow[] {
      if (limit <= 0) return [];
      return claimUndecided.all({ now, limit, lease: leaseMs }) as ClaimedRow[];
    },
    /**
     * Claims decided rows that are due, in due order, each only once take(origin) gave it a
     * slot of its origin, and limit in all; rows of origins in `skip` (at their bound) are
     * passed over.
     */
    claimDeliverable(
      now: number,
      limit: number,
      leaseMs: number,
      skip: string[],
      take: (origin: string) => boolean,
    ): ClaimedRow[] {
      if (limit <= 0) return [];
      const took = new Set<string>();
      const ids: string[] = [];
      const full = new Set(skip);
      // A scan returns candidates of origins that fill up on the way; look again past them.
      for (let round = 0; round < 4 && ids.length < limit; round++) {
        const scan = { now, limit: limit * 2, skip: JSON.stringify([...full]) };
        const rows = deliverable.all(scan) as Array<{ id: string; origin: string }>;
        let filled = false;
        for (const r of rows) {
          if (ids.length >= limit) break;
          if (full.has(r.origin)) continue;
          if (!take(r.origin)) {
            full.add(r.origin);
            filled = true;
            continue;
          }
          took.add(r.origin);
          ids.push(r.id);
        }
        if (!filled || rows.length < limit * 2) break;
        // Rows already taken must not be offered again: they are still due until updated.
        for (const o of took) full.add(o);
      }
      if (ids.length === 0) return [];
      return claimIds.all({ ids: JSON.stringify(ids), now, lease: leaseMs }) as ClaimedRow[];
    },
    /**
     * Persists a decision under its claim. keep: the delivery starts now under the same
     * lease; otherwise the row waits in the table for a delivery slot. False when the
     * claim no longer holds (the row is not ours any more).
     */
    recordDecision(d: Decision, c: Claim, keep: boolean, now: number): boolean {
      const row = { id: d.id, claim: c.claim, keep: keep ? 1 : 0, status: d.status, reason: d.reason, source: d.source, latency_ms: d.latency_ms, now };
      return decide.run(row).changes === 1;
    },
    /** Persists one attempt under its claim; false (and no attempt row) when the claim no longer holds. */
    recordAttempt(r: AttemptRecord, claim: number, now: number): boolean {
      const status = r.http_status !== null ? `HTTP ${r.http_status}` : null;
      const last_error = r.outcome === 'delivered' ? null : (r.failure ?? r.error ?? status);
      const update = { id: r.id, claim, attempt: r.attempt, now, outcome: r.outcome, next_due_at: r.next_due_at, last_error };
      const changed = attemptUpdate.run(update).changes === 1;
      if (changed) attemptInsert.run(r);
      return changed;
    },
    /** Folds a batch of one origin's attempts (in order) into callback_origins. */
    recordOrigin(origin: string, attempts: AttemptRecord[], at: number): void {
      if (attempts.length === 0) return;
      let delivered = 0;
      let failures = 0;
      for (const a of attempts) {
        if (a.outcome === 'delivered') {
          delivered++;
          failures = 0;
        } else failures++;
      }
      const last = attempts[attempts.length - 1]!;
      originUpsert.run({
        origin, attempts: attempts.length, delivered, failures, at,
        status: last.http_status !== null ? String(last.http_status) : last.error,
        last_delivered: delivered > 0 ? 1 : 0,
      });
    },
    /** Hands claimed rows back, due at `due`; returns how many were still ours. */
    release(claims: Claim[], now: number, due = now): number {
      let n = 0;
      for (const c of claims) n += release.run({ id: c.id, claim: c.claim, now, due }).changes;
      return n;
    },
    insertKey(key: string, bodyHash: string, requestId: string, now: number): void {
      keyInsert.run(key, bodyHash, requestId, now);
    },
    findKey(key: string, notBefore: number): { body_hash: string; request_id: string } | null {
      return (keyFind.get(key, notBefore) as { body_hash: string; request_id: string } | undefined) ?? null;
    },
    /** Open requests per API client (the per-client share of the bound). */
    countOpenByClient(): Map<string, number> {
      const out = new Map<string, number>();
      for (const r of openByClient.all() as Array<{ client: string; n: number }>) out.set(r.client, r.n);
      return out;
    },
    countOpen(): number {
      return countOpen.get() as number;
    },
    oldestOpenCreatedAt(): number | null {
      const a = oldestUndecided.get() as number | null;
      const b = oldestDeliverable.get() as number | null;
      return a === null ? b : b === null ? a : Math.min(a, b);
    },
    countFailed(): number {
      return countFailed.get() as number;
    },
    /** When the next undecided row is due (leases included), null when none is open. */
    nextUndecided(): number | null {
      return (nextUndecided.get() as number | null) ?? null;
    },
    /** When the next decided row of an origin not in `skip` is due. */
    nextDeliverable(skip: string[]): number | null {
      return (nextDeliverable.get(JSON.stringify(skip)) as number | null) ?? null;
    },
  };
}

export type Store = ReturnType<typeof createStore>;
