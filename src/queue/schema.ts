// Versioned migrations, applied in order at start (SPEC §4). Timestamps of the hot queue
// tables are integer ms (cheap to compare and index); every such table has a view that
// shows ISO text for admins. Admin-edited tables (acl, stations) use ISO text directly.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const iso = (col: string) => `CASE WHEN ${col} IS NULL THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%fZ', ${col} / 1000.0, 'unixepoch') END`;

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'core queue, decisions, callback attempts, acl, stations',
    sql: `
CREATE TABLE charging_requests (
  id                  TEXT PRIMARY KEY,          -- request_id (UUID) returned in the 202
  station_id          TEXT NOT NULL,             -- as the client sent it
  driver_token        TEXT,                      -- full token; NULL once delivery is final
  token_hash          TEXT NOT NULL,             -- hex SHA-256 of the token
  token_mask          TEXT NOT NULL,             -- e.g. ABCD…oken
  callback_url        TEXT NOT NULL,
  state               TEXT NOT NULL CHECK (state IN ('queued','authorizing','delivering','delivered','failed')),
  created_at          INTEGER NOT NULL,          -- ms since epoch
  updated_at          INTEGER NOT NULL,
  due_at              INTEGER NOT NULL,          -- claimable from then on: next attempt, or lease expiry while claimed
  locked_at           INTEGER,                   -- when the current lease was taken (NULL: not claimed)
  claim_count         INTEGER NOT NULL DEFAULT 0,
  attempts            INTEGER NOT NULL DEFAULT 0, -- callback attempts made
  decision_status     TEXT CHECK (decision_status IN ('allowed','not_allowed','unknown','invalid')),
  decision_reason     TEXT,
  decision_source     TEXT,
  decision_latency_ms INTEGER,
  decided_at          INTEGER,
  finished_at         INTEGER,                   -- delivered or failed
  last_error          TEXT
) STRICT;
-- The claim query walks only unfinished rows, ordered by when they are due.
CREATE INDEX charging_requests_due ON charging_requests (due_at) WHERE state IN ('queued','authorizing','delivering');
CREATE INDEX charging_requests_finished ON charging_requests (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX charging_requests_created ON charging_requests (created_at);

CREATE TABLE callback_attempts (
  id           INTEGER PRIMARY KEY,
  request_id   TEXT NOT NULL,
  attempt      INTEGER NOT NULL,                 -- 1-based
  started_at   INTEGER NOT NULL,                 -- ms since epoch
  duration_ms  INTEGER NOT NULL,
  http_status  INTEGER,                          -- NULL when the receiver did not answer
  error        TEXT,                             -- network error code, NULL when it answered
  outcome      TEXT NOT NULL CHECK (outcome IN ('delivered','retry','failed'))
) STRICT;
CREATE INDEX callback_attempts_request ON callback_attempts (request_id, attempt);

CREATE TABLE acl (
  token       TEXT PRIMARY KEY,                  -- driver token as issued (RFID UID, app token)
  blocked     INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0,1)),
  expires_at  TEXT,                              -- ISO-8601 UTC; NULL = never
  note        TEXT,
  created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
) STRICT;

-- Station scope of a token; no rows for a token = every station of the site.
CREATE TABLE acl_stations (
  token       TEXT NOT NULL REFERENCES acl(token) ON DELETE CASCADE,
  station_id  TEXT NOT NULL,                     -- lower-case UUID
  PRIMARY KEY (token, station_id)
) STRICT, WITHOUT ROWID;

-- The site's registered stations; while empty, any station_id is acceptable.
CREATE TABLE stations (
  station_id  TEXT PRIMARY KEY,                  -- lower-case UUID
  name        TEXT,
  created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
) STRICT;

CREATE VIEW requests_readable AS
SELECT id, station_id, token_mask, state, decision_status, decision_reason, decision_source,
       decision_latency_ms, attempts, callback_url, last_error,
       ${iso('created_at')} AS created_at, ${iso('decided_at')} AS decided_at,
       ${iso('finished_at')} AS finished_at, ${iso('due_at')} AS due_at, ${iso('locked_at')} AS locked_at
FROM charging_requests;

CREATE VIEW pending_requests AS
SELECT * FROM requests_readable WHERE state IN ('queued','authorizing','delivering') ORDER BY due_at;

CREATE VIEW failed_requests AS
SELECT * FROM requests_readable WHERE state = 'failed' ORDER BY finished_at DESC;

CREATE VIEW recent_decisions AS
SELECT id, station_id, token_mask, decision_status, decision_reason, decision_source, decision_latency_ms,
       ${iso('decided_at')} AS decided_at, state
FROM charging_requests WHERE decided_at IS NOT NULL ORDER BY charging_requests.decided_at DESC LIMIT 1000;

CREATE VIEW callback_attempts_readable AS
SELECT id, request_id, attempt, ${iso('started_at')} AS started_at, duration_ms, http_status, error, outcome
FROM callback_attempts;
`,
  },
  {
    version: 2,
    name: 'idempotency keys; indexes for metrics and replay',
    sql: `
-- Idempotency-Key header: a repeat with the same key and body answers with the first
-- request_id. Kept for a bounded time (IDEMPOTENCY_TTL), then pruned.
CREATE TABLE idempotency_keys (
  key         TEXT PRIMARY KEY,
  body_hash   TEXT NOT NULL,                     -- hex SHA-256 of the canonical body
  request_id  TEXT NOT NULL,
  created_at  INTEGER NOT NULL                   -- ms since epoch
) STRICT;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
-- For the oldest-pending gauge and the dead-letter count / replay --failed.
CREATE INDEX charging_requests_open_created ON charging_requests (created_at) WHERE state IN ('queued','authorizing','delivering');
CREATE INDEX charging_requests_failed ON charging_requests (finished_at) WHERE state = 'failed';
`,
  },
  {
    version: 3,
    name: 'replay rounds',
    sql: `
-- An admin replay starts a fresh round of CALLBACK_MAX_ATTEMPTS; attempts keeps counting
-- across rounds so callback_attempts numbers stay unique.
ALTER TABLE charging_requests ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;
ALTER TABLE charging_requests ADD COLUMN round_start_attempts INTEGER NOT NULL DEFAULT 0;
`,
  },
  {
    version: 4,
    name: 'serving instance',
    sql: `
-- The one process serving this file. A start finds out from it whether the previous
-- owner is gone (then its leases are handed back at once) or still running (then the
-- start is refused: two dispatchers on one queue would deliver everything twice).
CREATE TABLE service_instance (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  pid          INTEGER NOT NULL,
  host         TEXT NOT NULL,
  started_at   INTEGER NOT NULL,                 -- ms since epoch
  heartbeat_at INTEGER NOT NULL
) STRICT;
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;
