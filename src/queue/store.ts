import type { Decision, DecisionStatus, RequestState } from '../core/types.ts';
import type { Db } from './db.ts';

// Every queue operation as one prepared statement, prepared once. No method opens a
// transaction: the committer wraps a whole tick of them in one (group commit).

export interface NewRequest {
  id: string;
  station_id: string;
  driver_token: string;
  token_hash: string;
  token_mask: string;
  callback_url: string;
  created_at: number;
}

export interface ClaimedRow {
  id: string;
  station_id: string;
  driver_token: string | null;
  callback_url: string;
  state: RequestState;
  attempts: number;
  /** attempts before the current replay round (0 without replays). */
  round_start_attempts: number;
  claim_count: number;
  decision_status: DecisionStatus | null;
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

export function createStore(db: Db) {
  const insert = db.prepare(`INSERT INTO charging_requests
    (id, station_id, driver_token, token_hash, token_mask, callback_url, state, created_at, updated_at, due_at)
    VALUES (@id, @station_id, @driver_token, @token_hash, @token_mask, @callback_url, 'queued', @created_at, @created_at, @created_at)`);
  // Inserted already claimed, for the dispatcher to take straight from the accept path:
  // one write and one commit fewer per request than insert-then-claim.
  const insertClaimed = db.prepare(`INSERT INTO charging_requests
    (id, station_id, driver_token, token_hash, token_mask, callback_url, state, created_at, updated_at, due_at, locked_at, claim_count)
    VALUES (@id, @station_id, @driver_token, @token_hash, @token_mask, @callback_url, 'authorizing', @created_at, @created_at,
            @created_at + @lease, @created_at, 1)`);

  // Claim by due_at, which is the lease expiry while a row is claimed: an expired lease
  // is claimable again however old the row is (never by created_at).
  const claim = db.prepare(`UPDATE charging_requests
    SET state = CASE WHEN decision_status IS NULL THEN 'authorizing' ELSE 'delivering' END,
        locked_at = @now, due_at = @now + @lease, claim_count = claim_count + 1, updated_at = @now
    WHERE id IN (SELECT id FROM charging_requests WHERE ${OPEN} AND due_at <= @now ORDER BY due_at LIMIT @limit)
    RETURNING id, station_id, driver_token, callback_url, state, attempts, round_start_attempts, claim_count, decision_status`);

  // The lease taken at claim time already covers decision and delivery (see the
  // dispatcher's leaseMs), so due_at stays: one index entry fewer rewritten per request.
  const decide = db.prepare(`UPDATE charging_requests
    SET state = 'delivering', decision_status = @status, decision_reason = @reason, decision_source = @source,
        decision_latency_ms = @latency_ms, decided_at = @now, updated_at = @now
    WHERE id = @id AND state = 'authorizing'`);

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
    WHERE id = @id AND state = 'delivering'`);

  // Shutdown hands claimed rows back at once instead of waiting for their leases.
  const release = db.prepare(`UPDATE charging_requests
    SET locked_at = NULL, due_at = @now, updated_at = @now,
        state = CASE WHEN decision_status IS NULL THEN 'queued' ELSE state END
    WHERE id IN (SELECT value FROM json_each(@ids)) AND ${OPEN}`);

  // REPLACE: an expired key may still be in the table until the retention job prunes it.
  const keyInsert = db.prepare('INSERT OR REPLACE INTO idempotency_keys (key, body_hash, request_id, created_at) VALUES (?, ?, ?, ?)');
  const keyFind = db.prepare('SELECT body_hash, request_id FROM idempotency_keys WHERE key = ? AND created_at >= ?');

  // Walks the open rows by the due index (bounded by QUEUE_MAX_SIZE); used by metrics scrapes.
  const oldestOpen = db.prepare(`SELECT MIN(created_at) FROM charging_requests INDEXED BY charging_requests_due WHERE ${OPEN}`).pluck();
  const countFailed = db.prepare("SELECT COUNT(*) FROM charging_requests WHERE state = 'failed'").pluck();

  const countOpen = db.prepare(`SELECT COUNT(*) AS n FROM charging_requests WHERE ${OPEN}`).pluck();
  const nextDue = db.prepare(`SELECT MIN(due_at) FROM charging_requests WHERE ${OPEN}`).pluck();

  return {
    insert(row: NewRequest): void {
      insert.run(row);
    },
    /** Inserts the row claimed under a lease of leaseMs from its created_at. */
    insertClaimed(row: NewRequest, leaseMs: number): void {
      insertClaimed.run({ ...row, lease: leaseMs });
    },
    claim(now: number, limit: number, leaseMs: number): ClaimedRow[] {
      if (limit <= 0) return [];
      return claim.all({ now, limit, lease: leaseMs }) as ClaimedRow[];
    },
    /** Persists decisions; returns how many rows took them (a row released meanwhile does not). */
    recordDecisions(decisions: Decision[], now: number): number {
      let n = 0;
      for (const d of decisions) {
        n += decide.run({ id: d.id, status: d.status, reason: d.reason, source: d.source, latency_ms: d.latency_ms, now }).changes;
      }
      return n;
    },
    recordAttempts(records: AttemptRecord[], now: number): void {
      for (const r of records) {
        attemptInsert.run(r);
        const last_error = r.outcome === 'delivered' ? null : r.failure ?? (r.error ?? (r.http_status !== null ? `HTTP ${r.http_status}` : null));
        attemptUpdate.run({ id: r.id, attempt: r.attempt, now, outcome: r.outcome, next_due_at: r.next_due_at, last_error });
      }
    },
    release(ids: string[], now: number): number {
      if (ids.length === 0) return 0;
      return release.run({ ids: JSON.stringify(ids), now }).changes;
    },
    insertKey(key: string, bodyHash: string, requestId: string, now: number): void {
      keyInsert.run(key, bodyHash, requestId, now);
    },
    findKey(key: string, notBefore: number): { body_hash: string; request_id: string } | null {
      return (keyFind.get(key, notBefore) as { body_hash: string; request_id: string } | undefined) ?? null;
    },
    countOpen(): number {
      return countOpen.get() as number;
    },
    oldestOpenCreatedAt(): number | null {
      return (oldestOpen.get() as number | null) ?? null;
    },
    countFailed(): number {
      return countFailed.get() as number;
    },
    nextDue(): number | null {
      return (nextDue.get() as number | null) ?? null;
    },
  };
}

export type Store = ReturnType<typeof createStore>;
