// Plain data shapes that cross the thread boundary between dispatch and workers/.

export type DecisionStatus = 'allowed' | 'not_allowed' | 'unknown' | 'invalid';
export type DecisionSource = 'local_list' | 'system';
export type RequestState = 'queued' | 'authorizing' | 'delivering' | 'delivered' | 'failed';

export interface DecideItem {
  id: string;
  station_id: string;
  driver_token: string;
}

export interface DecideTask {
  dbPath: string;
  /** Path of the better-sqlite3 addon when it is not resolvable from node_modules (the executable). */
  nativeBinding?: string | undefined;
  /** Wall-clock ms used for expiry checks, so the main thread's clock rules. */
  now: number;
  items: DecideItem[];
}

export interface Decision {
  id: string;
  status: DecisionStatus;
  reason: string;
  source: DecisionSource;
  latency_ms: number;
}

export interface DeliverItem {
  id: string;
  url: string;
  /** The exact JSON body; built on the main thread so every retry sends the same bytes. */
  body: string;
  /** Headers for this attempt (webhook-id, webhook-timestamp, webhook-signature). */
  headers: Record<string, string>;
}

export interface DeliverTask {
  timeoutMs: number;
  /** CALLBACK_ALLOWED_HOSTS entries (null = any host but the always-refused ones). */
  allowedHosts: string[] | null;
  items: DeliverItem[];
}

export interface DeliveryResult {
  id: string;
  started_at: number;
  duration_ms: number;
  /** HTTP status when the receiver answered, else null. */
  http_status: number | null;
  /** Error code (e.g. UND_ERR_CONNECT_TIMEOUT, ECONNREFUSED) when it did not. */
  error: string | null;
  /** Parsed Retry-After in ms, when the receiver sent one. */
  retry_after_ms: number | null;
  /** Why the attempt was refused before connecting (URL policy), else null. */
  detail?: string | null;
}

/** A validated POST /api/v1/charging-session body. */
export interface SessionBody {
  station_id: string;
  driver_token: string;
  callback_url: string;
}

// The read model of one request (GET /api/v1/charging-session/{id}, `requests show`).
export interface AttemptView {
  attempt: number;
  at: string;
  duration_ms: number;
  http_status: number | null;
  error: string | null;
  outcome: 'delivered' | 'retry' | 'failed';
}

export interface RequestView {
  request_id: string;
  state: RequestState;
  station_id: string;
  /** Masked: the full token is personal data and never leaves through a read. */
  driver_token: string;
  callback_url: string;
  decision: { status: DecisionStatus; reason: string | null; source: string | null; latency_ms: number | null; decided_at: string | null } | null;
  delivery: { attempts: number; last_error: string | null; next_attempt_at: string | null; finished_at: string | null };
  attempts: AttemptView[];
  created_at: string;
  updated_at: string;
}
