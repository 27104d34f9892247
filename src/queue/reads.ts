import type { AttemptView, DecisionStatus, RequestState, RequestView, TokenType } from '../core/types.ts';
import type { Db } from './db.ts';

// The read model of one request, shared by GET /api/v1/charging-session/{id} and
// `chargegate requests show`, so both always print the same thing.

/** A charging_requests row as the read model needs it (both engines). */
export interface RequestRow {
  id: string;
  station_id: string;
  token_mask: string;
  token_type: TokenType;
  callback_url: string;
  client: string | null;
  state: RequestState;
  created_at: number;
  updated_at: number;
  due_at: number;
  locked_at: number | null;
  attempts: number;
  decision_status: DecisionStatus | null;
  decision_reason: string | null;
  decision_source: string | null;
  decision_latency_ms: number | null;
  decided_at: number | null;
  finished_at: number | null;
  last_error: string | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The columns requestView reads, for either engine's query. */
export const REQUEST_COLUMNS = `id, station_id, token_mask, token_type, callback_url, client, state, created_at, updated_at, due_at, locked_at,
      attempts, decision_status, decision_reason, decision_source, decision_latency_ms, decided_at, finished_at, last_error`;

export function createReads(db: Db) {
  const one = db.prepare(`SELECT ${REQUEST_COLUMNS} FROM charging_requests WHERE id = ?`);
  const attempts = db.prepare(`SELECT attempt, started_at, duration_ms, http_status, error, outcome
    FROM callback_attempts WHERE request_id = ? ORDER BY attempt, id`);

  return {
    get(id: string): RequestView | null {
      const r = one.get(id) as RequestRow | undefined;
      return r ? requestView(r, attempts.all(r.id) as AttemptRow[]) : null;
    },
  };
}

export interface AttemptRow {
  attempt: number;
  started_at: number;
  duration_ms: number;
  http_status: number | null;
  error: string | null;
  outcome: AttemptView['outcome'];
}

export function requestView(r: RequestRow, a: AttemptRow[]): RequestView {
  const waiting = r.state === 'delivering' && r.locked_at === null;
  return {
    request_id: r.id,
    state: r.state,
    station_id: r.station_id,
    driver_token: r.token_mask,
    token_type: r.token_type,
    callback_url: r.callback_url,
    client: r.client,
    decision: r.decision_status
      ? { status: r.decision_status, reason: r.decision_reason, source: r.decision_source, latency_ms: r.decision_latency_ms, decided_at: iso(r.decided_at) }
      : null,
    delivery: { attempts: r.attempts, last_error: r.last_error, next_attempt_at: waiting ? iso(r.due_at) : null, finished_at: iso(r.finished_at) },
    attempts: a.map((x) => ({ attempt: x.attempt, at: iso(x.started_at)!, duration_ms: x.duration_ms, http_status: x.http_status, error: x.error, outcome: x.outcome })),
    created_at: iso(r.created_at)!,
    updated_at: iso(r.updated_at)!,
  };
}

export type Reads = ReturnType<typeof createReads>;
