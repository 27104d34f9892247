import type { GateRef } from './gate.ts';

// Plain data shapes that cross the thread boundary between dispatch and workers/.

export type DecisionStatus = 'allowed' | 'not_allowed' | 'unknown' | 'invalid';
/**
 * Which step of the authorization chain decided (README "Authorization chain"); `system`
 * when none could: the main thread's deadline passed, or a worker task failed.
 */
export type DecisionSource = 'local_list' | 'cache' | 'upstream' | 'offline_rule' | 'system';
export type RequestState = 'queued' | 'authorizing' | 'delivering' | 'delivered' | 'failed';
/** OCPI 2.2.1 TokenType (src/core/validate.ts TOKEN_TYPES): what kind of credential driver_token is. */
export type TokenType = 'RFID' | 'APP_USER' | 'AD_HOC_USER' | 'OTHER';

export interface DecideItem {
  id: string;
  station_id: string;
  driver_token: string;
  token_type: TokenType;
}

/**
 * What deciding a batch reads, looked up by the main thread when the thread cannot read the
 * database itself (PostgreSQL): rows as workers/decide.ts's SQLite statements return them.
 */
export interface DecideFacts {
  hasStations: boolean;
  /** The batch's stations (lower case) that are registered. */
  stations: string[];
  /** [token, station, row] for each (token, station) of the batch whose token is listed. */
  acl: Array<[string, string, Record<string, unknown>]>;
  /** [group, station, row] for each (group, station) the listed tokens lead to. */
  groups: Array<[string, string, Record<string, unknown>]>;
  /** [token_hash, token_type, station, row] of authorizer_cache entries (with an upstream only). */
  cache: Array<[string, string, string, Record<string, unknown>]>;
}

export interface DecideTask {
  /** Start gate (src/core/gate.ts): a task the main thread cancelled answers null. */
  gate?: GateRef;
  dbPath: string;
  /** Set when the thread is not to open dbPath: everything the batch reads. */
  facts?: DecideFacts;
  /** Path of the better-sqlite3 addon when it is not resolvable from node_modules (the executable). */
  nativeBinding?: string | undefined;
  /** Wall-clock ms used for expiry checks, so the main thread's clock rules. */
  now: number;
  items: DecideItem[];
  /** Present when an upstream authorizer is configured: items the local list and the
   * cache cannot decide come back with a `referral` instead of a final decision. */
  authorizer?: { offlineCacheMaxAgeMs: number } | undefined;
}

/**
 * The offline rule that applies to a referred item if the upstream cannot answer, found
 * by the local step (which reads the list and the cache): a fresh-enough cached `allowed`,
 * an `allow_offline` entry, a token nobody knows (OFFLINE_ALLOW_UNKNOWN), or none.
 */
export type OfflineFact = 'allow_offline' | 'cached_allowed' | 'unknown_token' | 'none';

/** Why the local step could not decide an item, and what the offline rules may use. */
export interface Referral {
  token_hash: string;
  /** Lower-case station id: the cache and coalescing key with token_hash. */
  station: string;
  offline: OfflineFact;
  /** The token has a local-list entry (then it is never an "unknown token"). */
  listed: boolean;
}

/** An upstream answer as the authorizer_cache table keeps it (token hashed). */
export interface CachedAnswer {
  token_hash: string;
  /** An eMSP may answer differently for an app user than for a card with the same uid. */
  token_type: TokenType;
  station_id: string;
  status: 'allowed' | 'not_allowed';
  reason: string;
  /** ms since epoch */
  stored_at: number;
  /** ms since epoch; past it the answer is stale (offline rules may still use an allowed one). */
  fresh_until: number;
}

export interface Decision {
  id: string;
  status: DecisionStatus;
  reason: string;
  source: DecisionSource;
  latency_ms: number;
  /** Local step only: not decided yet, the upstream authorizer is to be asked. */
  referral?: Referral;
  /** An upstream answer for the main thread to store in authorizer_cache. */
  cache_put?: CachedAnswer;
  /** The authorizer_cache entry this decision used, kept recent for the LRU bound. */
  cache_used?: { token_hash: string; token_type: TokenType; station_id: string };
  /** A token without a local-list entry that was not allowed by upstream or cache: recorded in unknown_tokens. */
  unknown_token?: boolean;
  /** Why the upstream authorizer could not answer (logged with the decision). */
  upstream_error?: string;
}

/**
 * Outbound forward proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, read by src/config.ts only),
 * for callbacks and the upstream authorizer alike. null = direct connections.
 */
export interface ProxySettings {
  /** Proxy for http: targets. */
  httpProxy: string | null;
  /** Proxy for https: targets (tunnelled with CONNECT). */
  httpsProxy: string | null;
  /** Hosts reached directly: comma-separated names, .suffixes, host:port, `*`. */
  noProxy: string | null;
}

/** What a worker thread needs to call the upstream authorizer (built from Config). */
export interface AuthorizerSettings {
  url: string;
  protocol: 'json' | 'ocpi';
  token: string | null;
  /** Upstream calls one worker thread makes at once (AUTHORIZER_MAX_CONCURRENCY split across threads). */
  maxConcurrent: number;
  /** Consecutive failures that open the circuit breaker. */
  breakerFailures: number;
  /** How long the breaker stays open before one probe call is let through. */
  breakerOpenMs: number;
  /** The breaker's state, shared by every thread (see src/core/breaker.ts). */
  breakerState: SharedArrayBuffer;
  /** How long an upstream `allowed` / `not_allowed` is fresh when the answer does not say. */
  cacheTtlMs: number;
  cacheNegativeTtlMs: number;
  offlineAllowUnknown: boolean;
  /** Outbound proxies; null or absent = direct. */
  proxy?: ProxySettings | null;
}

export interface AuthorizeItem {
  id: string;
  station_id: string;
  driver_token: string;
  token_type: TokenType;
  referral: Referral;
}

export interface AuthorizeTask {
  gate?: GateRef;
  authorizer: AuthorizerSettings;
  /** The main thread's (injectable) clock when the task was sent: breaker timing. */
  now: number;
  /** clockMs() when the task was sent: the worker adds the time since, queueing included. */
  sentAt: number;
  /** Absolute clockMs() instant the upstream step must end by (a margin inside the decision deadline). */
  upstreamBy: number;
  items: AuthorizeItem[];
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
  gate?: GateRef;
  /** CALLBACK_TIMEOUT_MS, measured by the worker from the start of each POST. */
  timeoutMs: number;
  /** CALLBACK_ALLOWED_HOSTS entries (null = any host but the always-refused ones). */
  allowedHosts: string[] | null;
  /** Outbound proxies; null or absent = direct. */
  proxy?: ProxySettings | null;
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
  /** Defaulted to RFID by the schema when the client names none. */
  token_type: TokenType;
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
  token_type: TokenType;
  callback_url: string;
  /** The API key name the request came with; null when none was required. */
  client: string | null;
  decision: { status: DecisionStatus; reason: string | null; source: string | null; latency_ms: number | null; decided_at: string | null } | null;
  delivery: { attempts: number; last_error: string | null; next_attempt_at: string | null; finished_at: string | null };
  attempts: AttemptView[];
  created_at: string;
  updated_at: string;
}
