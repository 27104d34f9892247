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
  {
    version: 5,
    name: 'acl groups, validity window, allow_offline, effective view, list version',
    sql: `
-- A token may belong to one group; a blocked, expired or not-yet-valid group stops its
-- tokens, and a group's station scope narrows theirs (README "Authorization chain").
CREATE TABLE acl_groups (
  name          TEXT PRIMARY KEY,
  blocked       INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0,1)),
  valid_from    TEXT,                            -- ISO-8601 UTC; NULL = already valid
  expires_at    TEXT,                            -- ISO-8601 UTC; NULL = never
  allow_offline INTEGER NOT NULL DEFAULT 0 CHECK (allow_offline IN (0,1)),
  note          TEXT,
  created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
) STRICT;

-- Station scope of a group; no rows = every station of the site.
CREATE TABLE acl_group_stations (
  group_name  TEXT NOT NULL REFERENCES acl_groups(name) ON DELETE CASCADE,
  station_id  TEXT NOT NULL,                     -- lower-case UUID
  PRIMARY KEY (group_name, station_id)
) STRICT, WITHOUT ROWID;

-- No ON DELETE action: a group that still has tokens cannot be removed (removing a
-- blocked group must not quietly unblock its tokens).
ALTER TABLE acl ADD COLUMN group_name TEXT REFERENCES acl_groups(name);
ALTER TABLE acl ADD COLUMN valid_from TEXT;      -- ISO-8601 UTC; NULL = already valid
-- 1 = ask the upstream authorizer first, allow when it cannot answer (OCPI ALLOWED_OFFLINE);
-- 0 = the entry decides at once.
ALTER TABLE acl ADD COLUMN allow_offline INTEGER NOT NULL DEFAULT 0 CHECK (allow_offline IN (0,1));
CREATE INDEX acl_group ON acl (group_name) WHERE group_name IS NOT NULL;

-- The version of the last versioned import (OCPP SendLocalList listVersion); no row = 0.
CREATE TABLE acl_list_version (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  version      INTEGER NOT NULL CHECK (version >= 1),
  update_type  TEXT NOT NULL CHECK (update_type IN ('full','differential')),
  updated_at   TEXT NOT NULL
) STRICT;

-- Each token's effective state now, the same rules the decision applies (state 'active'
-- = allowed at the listed stations; allow_offline = 1 means upstream first).
CREATE VIEW acl_effective AS
SELECT a.token, a.group_name,
  CASE
    WHEN a.blocked = 1 THEN 'blocked'
    WHEN a.group_name IS NOT NULL AND g.name IS NULL THEN 'unknown_group'
    WHEN g.blocked = 1 THEN 'group_blocked'
    WHEN a.expires_at IS NOT NULL AND a.expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ','now') THEN 'expired'
    WHEN g.expires_at IS NOT NULL AND g.expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ','now') THEN 'group_expired'
    WHEN a.valid_from IS NOT NULL AND a.valid_from > strftime('%Y-%m-%dT%H:%M:%fZ','now') THEN 'not_yet_valid'
    WHEN g.valid_from IS NOT NULL AND g.valid_from > strftime('%Y-%m-%dT%H:%M:%fZ','now') THEN 'group_not_yet_valid'
    ELSE 'active'
  END AS state,
  CASE
    WHEN NOT EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token)
     AND NOT EXISTS (SELECT 1 FROM acl_group_stations s WHERE s.group_name = a.group_name) THEN '*'
    ELSE COALESCE((SELECT group_concat(station_id, ';') FROM (
      SELECT c.station_id FROM (
        SELECT station_id FROM acl_stations WHERE token = a.token
        UNION SELECT station_id FROM acl_group_stations WHERE group_name = a.group_name) c
      WHERE (NOT EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token)
             OR c.station_id IN (SELECT station_id FROM acl_stations s WHERE s.token = a.token))
        AND (NOT EXISTS (SELECT 1 FROM acl_group_stations s WHERE s.group_name = a.group_name)
             OR c.station_id IN (SELECT station_id FROM acl_group_stations s WHERE s.group_name = a.group_name))
      ORDER BY c.station_id)), '')
  END AS stations,
  CASE WHEN g.valid_from IS NULL OR (a.valid_from IS NOT NULL AND a.valid_from >= g.valid_from) THEN a.valid_from ELSE g.valid_from END AS valid_from,
  CASE WHEN g.expires_at IS NULL OR (a.expires_at IS NOT NULL AND a.expires_at <= g.expires_at) THEN a.expires_at ELSE g.expires_at END AS expires_at,
  CASE WHEN a.allow_offline = 1 OR g.allow_offline = 1 THEN 1 ELSE 0 END AS allow_offline,
  a.note
FROM acl a LEFT JOIN acl_groups g ON g.name = a.group_name;
`,
  },
  {
    version: 6,
    name: 'authorizer cache, unknown tokens',
    sql: `
-- Upstream authorizer answers, so a restart keeps them and every worker thread shares
-- them. Keyed by the token's SHA-256, never the token. Bounded: the least recently used
-- rows go first (AUTHORIZER_CACHE_MAX_ENTRIES).
CREATE TABLE authorizer_cache (
  token_hash    TEXT NOT NULL,                   -- hex SHA-256 of the driver token
  station_id    TEXT NOT NULL,                   -- lower-case UUID
  status        TEXT NOT NULL CHECK (status IN ('allowed','not_allowed')),
  reason        TEXT NOT NULL,
  stored_at     INTEGER NOT NULL,                -- ms since epoch: when upstream answered
  fresh_until   INTEGER NOT NULL,                -- ms since epoch: decides alone until then
  last_used_at  INTEGER NOT NULL,                -- ms since epoch: LRU order
  PRIMARY KEY (token_hash, station_id)
) STRICT;
CREATE INDEX authorizer_cache_lru ON authorizer_cache (last_used_at);

CREATE VIEW authorizer_cache_readable AS
SELECT token_hash, station_id, status, reason, ${iso('stored_at')} AS stored_at,
       ${iso('fresh_until')} AS fresh_until, ${iso('last_used_at')} AS last_used_at
FROM authorizer_cache;

-- Tokens without a local-list entry that were refused as unknown (or could not be decided
-- while the upstream was down, or were let through by OFFLINE_ALLOW_UNKNOWN), per station,
-- so an admin can add a card a driver just tapped. Hashed and masked, never in full.
CREATE TABLE unknown_tokens (
  token_hash       TEXT NOT NULL,
  station_id       TEXT NOT NULL,                -- lower-case UUID
  token_mask       TEXT NOT NULL,                -- e.g. ABCD…oken
  seen_count       INTEGER NOT NULL,
  first_seen_at    INTEGER NOT NULL,             -- ms since epoch
  last_seen_at     INTEGER NOT NULL,
  last_status      TEXT NOT NULL,                -- decision status of the last sighting
  last_reason      TEXT NOT NULL,
  last_request_id  TEXT NOT NULL,
  PRIMARY KEY (token_hash, station_id)
) STRICT;
CREATE INDEX unknown_tokens_last_seen ON unknown_tokens (last_seen_at);

CREATE VIEW unknown_tokens_readable AS
SELECT token_mask, token_hash, station_id, seen_count, ${iso('first_seen_at')} AS first_seen_at,
       ${iso('last_seen_at')} AS last_seen_at, last_status, last_reason, last_request_id
FROM unknown_tokens ORDER BY unknown_tokens.last_seen_at DESC;
`,
  },
  {
    version: 7,
    name: 'fewer indexes on the hot queue table',
    sql: `
-- Every accepted request inserts into and updates charging_requests three times; each
-- index is one more B-tree touched per write. Request ids are UUIDv7 (time-ordered), so
-- "newest first" needs no created_at index, and the oldest unfinished request is found by
-- walking the open rows through charging_requests_due (bounded by QUEUE_MAX_SIZE).
DROP INDEX charging_requests_created;
DROP INDEX charging_requests_open_created;
`,
  },
  {
    version: 8,
    name: 'delivery isolation per callback origin; claims split by lane; receivers',
    sql: `
-- scheme://host[:port] of callback_url (src/core/origin.ts): deliveries in flight are
-- bounded per origin (CALLBACK_MAX_IN_FLIGHT_PER_ORIGIN), so the claim needs it indexed.
ALTER TABLE charging_requests ADD COLUMN origin TEXT;
UPDATE charging_requests SET origin = cg_origin(callback_url);
-- One index per lane: the decision claim never walks rows waiting for a busy receiver,
-- and the delivery claim skips a saturated origin's rows without reading the table.
DROP INDEX charging_requests_due;
CREATE INDEX charging_requests_undecided ON charging_requests (due_at, created_at) WHERE state IN ('queued','authorizing');
CREATE INDEX charging_requests_deliverable ON charging_requests (due_at, origin, created_at) WHERE state = 'delivering';

-- What the service learnt of each receiver from its attempts (chargegate receivers).
CREATE TABLE callback_origins (
  origin               TEXT PRIMARY KEY,         -- scheme://host[:port]
  attempts             INTEGER NOT NULL,         -- callback attempts made, all time
  delivered            INTEGER NOT NULL,
  consecutive_failures INTEGER NOT NULL,         -- attempts since the last delivered one
  last_status          TEXT,                     -- HTTP status of the last attempt, or its error code
  last_attempt_at      INTEGER,                  -- ms since epoch
  last_delivered_at    INTEGER                   -- ms since epoch
) STRICT;

-- Per receiver: requests in flight (claimed for delivery), queued (open, not in flight),
-- when the next waiting one is due, and how its last attempts went.
CREATE VIEW receivers AS
WITH open AS (
  SELECT origin,
         SUM(state = 'delivering' AND locked_at IS NOT NULL) AS in_flight,
         SUM(NOT (state = 'delivering' AND locked_at IS NOT NULL)) AS queued,
         MIN(CASE WHEN state = 'delivering' AND locked_at IS NULL THEN due_at END) AS next_attempt
  FROM (SELECT origin, state, locked_at, due_at FROM charging_requests INDEXED BY charging_requests_undecided
        WHERE state IN ('queued','authorizing')
        UNION ALL
        SELECT origin, state, locked_at, due_at FROM charging_requests INDEXED BY charging_requests_deliverable
        WHERE state = 'delivering')
  GROUP BY origin),
keys AS (SELECT origin FROM open UNION SELECT origin FROM callback_origins)
SELECT k.origin, COALESCE(o.in_flight, 0) AS in_flight, COALESCE(o.queued, 0) AS queued,
       c.last_status, COALESCE(c.consecutive_failures, 0) AS consecutive_failures,
       ${iso('o.next_attempt')} AS next_attempt_at, ${iso('c.last_attempt_at')} AS last_attempt_at,
       ${iso('c.last_delivered_at')} AS last_delivered_at, COALESCE(c.attempts, 0) AS attempts, COALESCE(c.delivered, 0) AS delivered
FROM keys k LEFT JOIN open o ON o.origin = k.origin LEFT JOIN callback_origins c ON c.origin = k.origin
ORDER BY COALESCE(c.consecutive_failures, 0) DESC, COALESCE(o.queued, 0) DESC, k.origin;

DROP VIEW requests_readable;
CREATE VIEW requests_readable AS
SELECT id, station_id, token_mask, state, decision_status, decision_reason, decision_source,
       decision_latency_ms, attempts, callback_url, origin, last_error,
       ${iso('created_at')} AS created_at, ${iso('decided_at')} AS decided_at,
       ${iso('finished_at')} AS finished_at, ${iso('due_at')} AS due_at, ${iso('locked_at')} AS locked_at
FROM charging_requests;
`,
  },
  {
    version: 9,
    name: 'OCPI token types: on requests, ACL entries and authorizer cache keys',
    sql: `
-- OCPI 2.2.1 TokenType of driver_token as the client named it (RFID when it named none).
ALTER TABLE charging_requests ADD COLUMN token_type TEXT NOT NULL DEFAULT 'RFID'
  CHECK (token_type IN ('RFID','APP_USER','AD_HOC_USER','OTHER'));
-- An entry limited to one token type; NULL = any type.
ALTER TABLE acl ADD COLUMN token_type TEXT CHECK (token_type IN ('RFID','APP_USER','AD_HOC_USER','OTHER'));

-- An eMSP may answer differently for an app user than for a card with the same uid, so
-- the type joins the cache key. Every answer cached so far was asked for as RFID (the
-- only type sent before), so existing rows keep their meaning under that type.
DROP VIEW authorizer_cache_readable;
CREATE TABLE authorizer_cache_typed (
  token_hash    TEXT NOT NULL,                   -- hex SHA-256 of the driver token
  token_type    TEXT NOT NULL,                   -- OCPI TokenType the answer was asked for
  station_id    TEXT NOT NULL,                   -- lower-case UUID
  status        TEXT NOT NULL CHECK (status IN ('allowed','not_allowed')),
  reason        TEXT NOT NULL,
  stored_at     INTEGER NOT NULL,                -- ms since epoch: when upstream answered
  fresh_until   INTEGER NOT NULL,                -- ms since epoch: decides alone until then
  last_used_at  INTEGER NOT NULL,                -- ms since epoch: LRU order
  PRIMARY KEY (token_hash, token_type, station_id)
) STRICT;
INSERT INTO authorizer_cache_typed (token_hash, token_type, station_id, status, reason, stored_at, fresh_until, last_used_at)
  SELECT token_hash, 'RFID', station_id, status, reason, stored_at, fresh_until, last_used_at FROM authorizer_cache;
DROP TABLE authorizer_cache;
ALTER TABLE authorizer_cache_typed RENAME TO authorizer_cache;
CREATE INDEX authorizer_cache_lru ON authorizer_cache (last_used_at);
CREATE VIEW authorizer_cache_readable AS
SELECT token_hash, token_type, station_id, status, reason, ${iso('stored_at')} AS stored_at,
       ${iso('fresh_until')} AS fresh_until, ${iso('last_used_at')} AS last_used_at
FROM authorizer_cache;

DROP VIEW requests_readable;
CREATE VIEW requests_readable AS
SELECT id, station_id, token_mask, token_type, state, decision_status, decision_reason, decision_source,
       decision_latency_ms, attempts, callback_url, origin, last_error,
       ${iso('created_at')} AS created_at, ${iso('decided_at')} AS decided_at,
       ${iso('finished_at')} AS finished_at, ${iso('due_at')} AS due_at, ${iso('locked_at')} AS locked_at
FROM charging_requests;
`,
  },
  {
    version: 10,
    name: 'API keys; the client of each request',
    sql: `
-- One key per client (chargegate keys add). Only the key's SHA-256 is kept: the key itself
-- is printed once. While at least one row exists (or API_KEYS_REQUIRED=true) the API asks
-- for Authorization: Bearer <key>.
CREATE TABLE api_keys (
  name          TEXT PRIMARY KEY,                -- the client, e.g. site-controller
  key_hash      TEXT NOT NULL UNIQUE,            -- hex SHA-256 of the key
  created_at    INTEGER NOT NULL,                -- ms since epoch
  expires_at    INTEGER,                         -- ms since epoch; NULL = never
  last_used_at  INTEGER                          -- ms since epoch, kept to the minute
) STRICT;

CREATE VIEW api_keys_readable AS
SELECT name, ${iso('created_at')} AS created_at, ${iso('expires_at')} AS expires_at, ${iso('last_used_at')} AS last_used_at
FROM api_keys ORDER BY name;

-- The API key name a request came with (NULL: sent while no key was required).
ALTER TABLE charging_requests ADD COLUMN client TEXT;

DROP VIEW requests_readable;
CREATE VIEW requests_readable AS
SELECT id, station_id, token_mask, token_type, client, state, decision_status, decision_reason, decision_source,
       decision_latency_ms, attempts, callback_url, origin, last_error,
       ${iso('created_at')} AS created_at, ${iso('decided_at')} AS decided_at,
       ${iso('finished_at')} AS finished_at, ${iso('due_at')} AS due_at, ${iso('locked_at')} AS locked_at
FROM charging_requests;
`,
  },
  {
    version: 11,
    name: 'readable views of service_instance and idempotency_keys',
    // Self-contained (only adds views): it may be renumbered when merged beside another migration.
    sql: `
-- Every integer-ms timestamp has a view with ISO-8601 text (README "The database").
CREATE VIEW service_instance_readable AS
SELECT pid, host, ${iso('started_at')} AS started_at
FROM service_instance;

CREATE VIEW idempotency_keys_readable AS
SELECT key, body_hash, request_id, ${iso('created_at')} AS created_at
FROM idempotency_keys;
`,
  },
  {
    version: 12,
    name: 'the local list in generations: a full import is built beside the live list and switched by one row',
    sql: `
-- The ACL is kept in generations: acl_current names the one in force, and acl and
-- acl_stations are views of it, so every reader (the decision, acl list, acl_effective)
-- sees one whole list. \`acl import --replace\` builds the next generation in short write
-- transactions while the service keeps writing, switches acl_current in one short
-- transaction, then removes the old generation in chunks (src/cli/aclswap.ts): a
-- 1,000,000-entry list replaced in one transaction held the write lock for ~5.5 s.
CREATE TABLE acl_current (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  gen  INTEGER NOT NULL
) STRICT;
INSERT INTO acl_current (id, gen) VALUES (1, 0);

CREATE TABLE acl_rows (
  gen           INTEGER NOT NULL,
  token         TEXT NOT NULL,                   -- driver token as issued (RFID UID, app token)
  blocked       INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0,1)),
  expires_at    TEXT,                            -- ISO-8601 UTC; NULL = never
  note          TEXT,
  created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  group_name    TEXT REFERENCES acl_groups(name),
  valid_from    TEXT,                            -- ISO-8601 UTC; NULL = already valid
  allow_offline INTEGER NOT NULL DEFAULT 0 CHECK (allow_offline IN (0,1)),
  token_type    TEXT CHECK (token_type IN ('RFID','APP_USER','AD_HOC_USER','OTHER')),
  PRIMARY KEY (gen, token)
) STRICT, WITHOUT ROWID;
CREATE INDEX acl_rows_group ON acl_rows (group_name) WHERE group_name IS NOT NULL;

CREATE TABLE acl_station_rows (
  gen         INTEGER NOT NULL,
  token       TEXT NOT NULL,
  station_id  TEXT NOT NULL,                     -- lower-case UUID
  PRIMARY KEY (gen, token, station_id),
  FOREIGN KEY (gen, token) REFERENCES acl_rows (gen, token) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

INSERT INTO acl_rows (gen, token, blocked, expires_at, note, created_at, updated_at, group_name, valid_from,
    allow_offline, token_type)
  SELECT 0, token, blocked, expires_at, note, created_at, updated_at, group_name, valid_from, allow_offline, token_type
  FROM acl;
INSERT INTO acl_station_rows (gen, token, station_id) SELECT 0, token, station_id FROM acl_stations;
DROP TABLE acl_stations;
DROP TABLE acl;

CREATE VIEW acl AS
SELECT token, blocked, expires_at, note, created_at, updated_at, group_name, valid_from, allow_offline, token_type
FROM acl_rows WHERE gen = (SELECT gen FROM acl_current);

CREATE VIEW acl_stations AS
SELECT token, station_id FROM acl_station_rows WHERE gen = (SELECT gen FROM acl_current);

-- Writing through the views (an admin in the sqlite3 shell) writes the generation in force.
CREATE TRIGGER acl_insert INSTEAD OF INSERT ON acl BEGIN
  INSERT INTO acl_rows (gen, token, blocked, expires_at, note, created_at, updated_at, group_name, valid_from,
      allow_offline, token_type)
    VALUES ((SELECT gen FROM acl_current), NEW.token, COALESCE(NEW.blocked, 0), NEW.expires_at, NEW.note,
      COALESCE(NEW.created_at, strftime('%Y-%m-%dT%H:%M:%fZ','now')),
      COALESCE(NEW.updated_at, strftime('%Y-%m-%dT%H:%M:%fZ','now')),
      NEW.group_name, NEW.valid_from, COALESCE(NEW.allow_offline, 0), NEW.token_type);
END;
CREATE TRIGGER acl_update INSTEAD OF UPDATE ON acl BEGIN
  UPDATE acl_rows SET token = NEW.token, blocked = NEW.blocked, expires_at = NEW.expires_at, note = NEW.note,
      created_at = NEW.created_at, updated_at = NEW.updated_at, group_name = NEW.group_name,
      valid_from = NEW.valid_from, allow_offline = NEW.allow_offline, token_type = NEW.token_type
    WHERE gen = (SELECT gen FROM acl_current) AND token = OLD.token;
END;
CREATE TRIGGER acl_delete INSTEAD OF DELETE ON acl BEGIN
  DELETE FROM acl_rows WHERE gen = (SELECT gen FROM acl_current) AND token = OLD.token;
END;
CREATE TRIGGER acl_stations_insert INSTEAD OF INSERT ON acl_stations BEGIN
  INSERT INTO acl_station_rows (gen, token, station_id) VALUES ((SELECT gen FROM acl_current), NEW.token, NEW.station_id);
END;
CREATE TRIGGER acl_stations_delete INSTEAD OF DELETE ON acl_stations BEGIN
  DELETE FROM acl_station_rows WHERE gen = (SELECT gen FROM acl_current) AND token = OLD.token
    AND station_id = OLD.station_id;
END;
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;
