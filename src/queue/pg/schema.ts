// The PostgreSQL schema: the same tables and views as SQLite's final schema
// (src/queue/schema.ts after every migration), so `psql` answers what `sqlite3` answers.
// Timestamps of the hot tables stay integer ms (bigint); admin-edited tables keep ISO
// text, as in SQLite, so the decision code reads both engines alike. Migrations run under
// an advisory lock (src/queue/pg/migrate.ts): several instances may start at once.

export interface PgMigration {
  version: number;
  name: string;
  sql: string;
}

const iso = (col: string) => `cg_iso(${col})`;

export const PG_MIGRATIONS: PgMigration[] = [
  {
    version: 1,
    name: 'the SQLite schema of chargegate 0.1 (schema version 11), for several instances',
    sql: `
CREATE FUNCTION cg_iso(ms bigint) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT to_char(to_timestamp(ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
CREATE FUNCTION cg_now_iso() RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE TABLE charging_requests (
  id                   text PRIMARY KEY,
  station_id           text NOT NULL,
  driver_token         text,
  token_hash           text NOT NULL,
  token_mask           text NOT NULL,
  callback_url         text NOT NULL,
  state                text NOT NULL CHECK (state IN ('queued','authorizing','delivering','delivered','failed')),
  created_at           bigint NOT NULL,
  updated_at           bigint NOT NULL,
  due_at               bigint NOT NULL,
  locked_at            bigint,
  claim_count          integer NOT NULL DEFAULT 0,
  attempts             integer NOT NULL DEFAULT 0,
  decision_status      text CHECK (decision_status IN ('allowed','not_allowed','unknown','invalid')),
  decision_reason      text,
  decision_source      text,
  decision_latency_ms  integer,
  decided_at           bigint,
  finished_at          bigint,
  last_error           text,
  replays              integer NOT NULL DEFAULT 0,
  round_start_attempts integer NOT NULL DEFAULT 0,
  origin               text,
  token_type           text NOT NULL DEFAULT 'RFID' CHECK (token_type IN ('RFID','APP_USER','AD_HOC_USER','OTHER')),
  client               text,
  -- The instance holding the lease (fencing is claim_count + locked_at, as in SQLite).
  locked_by            text
);
CREATE INDEX charging_requests_undecided ON charging_requests (due_at, created_at) WHERE state IN ('queued','authorizing');
CREATE INDEX charging_requests_deliverable ON charging_requests (due_at, origin, created_at) WHERE state = 'delivering';
CREATE INDEX charging_requests_failed ON charging_requests (finished_at) WHERE state = 'failed';
CREATE INDEX charging_requests_finished ON charging_requests (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE callback_attempts (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_id   text NOT NULL,
  attempt      integer NOT NULL,
  started_at   bigint NOT NULL,
  duration_ms  integer NOT NULL,
  http_status  integer,
  error        text,
  outcome      text NOT NULL CHECK (outcome IN ('delivered','retry','failed'))
);
CREATE INDEX callback_attempts_request ON callback_attempts (request_id, attempt);

CREATE TABLE idempotency_keys (
  key         text PRIMARY KEY,
  body_hash   text NOT NULL,
  request_id  text NOT NULL,
  created_at  bigint NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE callback_origins (
  origin               text PRIMARY KEY,
  attempts             bigint NOT NULL,
  delivered            bigint NOT NULL,
  consecutive_failures bigint NOT NULL,
  last_status          text,
  last_attempt_at      bigint,
  last_delivered_at    bigint
);

CREATE TABLE acl_groups (
  name          text PRIMARY KEY,
  blocked       integer NOT NULL DEFAULT 0 CHECK (blocked IN (0,1)),
  valid_from    text,
  expires_at    text,
  allow_offline integer NOT NULL DEFAULT 0 CHECK (allow_offline IN (0,1)),
  note          text,
  created_at    text NOT NULL DEFAULT cg_now_iso(),
  updated_at    text NOT NULL DEFAULT cg_now_iso()
);
CREATE TABLE acl (
  token         text PRIMARY KEY,
  blocked       integer NOT NULL DEFAULT 0 CHECK (blocked IN (0,1)),
  expires_at    text,
  note          text,
  created_at    text NOT NULL DEFAULT cg_now_iso(),
  updated_at    text NOT NULL DEFAULT cg_now_iso(),
  group_name    text REFERENCES acl_groups(name),
  valid_from    text,
  allow_offline integer NOT NULL DEFAULT 0 CHECK (allow_offline IN (0,1)),
  token_type    text CHECK (token_type IN ('RFID','APP_USER','AD_HOC_USER','OTHER'))
);
CREATE INDEX acl_group ON acl (group_name) WHERE group_name IS NOT NULL;
CREATE TABLE acl_stations (
  token       text NOT NULL REFERENCES acl(token) ON DELETE CASCADE,
  station_id  text NOT NULL,
  PRIMARY KEY (token, station_id)
);
CREATE TABLE acl_group_stations (
  group_name  text NOT NULL REFERENCES acl_groups(name) ON DELETE CASCADE,
  station_id  text NOT NULL,
  PRIMARY KEY (group_name, station_id)
);
CREATE TABLE acl_list_version (
  id           integer PRIMARY KEY CHECK (id = 1),
  version      bigint NOT NULL CHECK (version >= 1),
  update_type  text NOT NULL CHECK (update_type IN ('full','differential')),
  updated_at   text NOT NULL
);
CREATE TABLE stations (
  station_id  text PRIMARY KEY,
  name        text,
  created_at  text NOT NULL DEFAULT cg_now_iso()
);
CREATE TABLE api_keys (
  name          text PRIMARY KEY,
  key_hash      text NOT NULL UNIQUE,
  created_at    bigint NOT NULL,
  expires_at    bigint,
  last_used_at  bigint
);
CREATE TABLE authorizer_cache (
  token_hash    text NOT NULL,
  token_type    text NOT NULL,
  station_id    text NOT NULL,
  status        text NOT NULL CHECK (status IN ('allowed','not_allowed')),
  reason        text NOT NULL,
  stored_at     bigint NOT NULL,
  fresh_until   bigint NOT NULL,
  last_used_at  bigint NOT NULL,
  PRIMARY KEY (token_hash, token_type, station_id)
);
CREATE INDEX authorizer_cache_lru ON authorizer_cache (last_used_at);
CREATE TABLE unknown_tokens (
  token_hash       text NOT NULL,
  station_id       text NOT NULL,
  token_mask       text NOT NULL,
  seen_count       bigint NOT NULL,
  first_seen_at    bigint NOT NULL,
  last_seen_at     bigint NOT NULL,
  last_status      text NOT NULL,
  last_reason      text NOT NULL,
  last_request_id  text NOT NULL,
  PRIMARY KEY (token_hash, station_id)
);
CREATE INDEX unknown_tokens_last_seen ON unknown_tokens (last_seen_at);

-- Every instance serving this database, one row each while it runs (SQLite has one row).
CREATE TABLE service_instance (
  id           text PRIMARY KEY,
  pid          integer NOT NULL,
  host         text NOT NULL,
  started_at   bigint NOT NULL,
  heartbeat_at bigint NOT NULL
);

-- QUEUE_MAX_SIZE across all instances: open requests, kept by the triggers below, so an
-- accept reads one row (locked for the accept's transaction) instead of counting.
CREATE TABLE queue_depth (
  id    integer PRIMARY KEY CHECK (id = 1),
  open  bigint NOT NULL
);
INSERT INTO queue_depth VALUES (1, 0);
CREATE FUNCTION cg_open(s text) RETURNS integer LANGUAGE sql IMMUTABLE AS
  $$ SELECT CASE WHEN s IN ('queued','authorizing','delivering') THEN 1 ELSE 0 END $$;
CREATE FUNCTION cg_depth_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE queue_depth SET open = open + d FROM (SELECT SUM(cg_open(state)) AS d FROM new_rows) x WHERE id = 1 AND d <> 0;
  RETURN NULL;
END $$;
CREATE FUNCTION cg_depth_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE queue_depth SET open = open + d
    FROM (SELECT COALESCE((SELECT SUM(cg_open(state)) FROM new_rows), 0) - COALESCE((SELECT SUM(cg_open(state)) FROM old_rows), 0) AS d) x
    WHERE id = 1 AND d <> 0;
  RETURN NULL;
END $$;
CREATE FUNCTION cg_depth_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE queue_depth SET open = open - d FROM (SELECT SUM(cg_open(state)) AS d FROM old_rows) x WHERE id = 1 AND d <> 0;
  RETURN NULL;
END $$;
CREATE TRIGGER charging_requests_depth_ins AFTER INSERT ON charging_requests
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cg_depth_ins();
CREATE TRIGGER charging_requests_depth_upd AFTER UPDATE ON charging_requests
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cg_depth_upd();
CREATE TRIGGER charging_requests_depth_del AFTER DELETE ON charging_requests
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cg_depth_del();

CREATE VIEW requests_readable AS
SELECT id, station_id, token_mask, token_type, client, state, decision_status, decision_reason, decision_source,
       decision_latency_ms, attempts, callback_url, origin, last_error,
       ${iso('created_at')} AS created_at, ${iso('decided_at')} AS decided_at, ${iso('finished_at')} AS finished_at,
       ${iso('due_at')} AS due_at, ${iso('locked_at')} AS locked_at, locked_by
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
CREATE VIEW idempotency_keys_readable AS
SELECT key, body_hash, request_id, ${iso('created_at')} AS created_at FROM idempotency_keys;
CREATE VIEW api_keys_readable AS
SELECT name, ${iso('created_at')} AS created_at, ${iso('expires_at')} AS expires_at, ${iso('last_used_at')} AS last_used_at
FROM api_keys ORDER BY name;
CREATE VIEW authorizer_cache_readable AS
SELECT token_hash, token_type, station_id, status, reason, ${iso('stored_at')} AS stored_at,
       ${iso('fresh_until')} AS fresh_until, ${iso('last_used_at')} AS last_used_at
FROM authorizer_cache;
CREATE VIEW unknown_tokens_readable AS
SELECT token_mask, token_hash, station_id, seen_count, ${iso('first_seen_at')} AS first_seen_at,
       ${iso('last_seen_at')} AS last_seen_at, last_status, last_reason, last_request_id
FROM unknown_tokens ORDER BY unknown_tokens.last_seen_at DESC;
CREATE VIEW service_instance_readable AS
SELECT id, pid, host, ${iso('started_at')} AS started_at, ${iso('heartbeat_at')} AS heartbeat_at FROM service_instance;
CREATE VIEW receivers AS
WITH open AS (
  SELECT origin,
         COUNT(*) FILTER (WHERE state = 'delivering' AND locked_at IS NOT NULL) AS in_flight,
         COUNT(*) FILTER (WHERE NOT (state = 'delivering' AND locked_at IS NOT NULL)) AS queued,
         MIN(CASE WHEN state = 'delivering' AND locked_at IS NULL THEN due_at END) AS next_attempt
  FROM charging_requests WHERE state IN ('queued','authorizing','delivering')
  GROUP BY origin),
keys AS (SELECT origin FROM open UNION SELECT origin FROM callback_origins)
SELECT k.origin, COALESCE(o.in_flight, 0) AS in_flight, COALESCE(o.queued, 0) AS queued,
       c.last_status, COALESCE(c.consecutive_failures, 0) AS consecutive_failures,
       ${iso('o.next_attempt')} AS next_attempt_at, ${iso('c.last_attempt_at')} AS last_attempt_at,
       ${iso('c.last_delivered_at')} AS last_delivered_at, COALESCE(c.attempts, 0) AS attempts, COALESCE(c.delivered, 0) AS delivered
FROM keys k LEFT JOIN open o ON o.origin = k.origin LEFT JOIN callback_origins c ON c.origin = k.origin
ORDER BY COALESCE(c.consecutive_failures, 0) DESC, COALESCE(o.queued, 0) DESC, k.origin;
CREATE VIEW acl_effective AS
SELECT a.token, a.group_name,
  CASE
    WHEN a.blocked = 1 THEN 'blocked'
    WHEN a.group_name IS NOT NULL AND g.name IS NULL THEN 'unknown_group'
    WHEN g.blocked = 1 THEN 'group_blocked'
    WHEN a.expires_at IS NOT NULL AND a.expires_at <= cg_now_iso() THEN 'expired'
    WHEN g.expires_at IS NOT NULL AND g.expires_at <= cg_now_iso() THEN 'group_expired'
    WHEN a.valid_from IS NOT NULL AND a.valid_from > cg_now_iso() THEN 'not_yet_valid'
    WHEN g.valid_from IS NOT NULL AND g.valid_from > cg_now_iso() THEN 'group_not_yet_valid'
    ELSE 'active'
  END AS state,
  CASE
    WHEN NOT EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token)
     AND NOT EXISTS (SELECT 1 FROM acl_group_stations s WHERE s.group_name = a.group_name) THEN '*'
    ELSE COALESCE((SELECT string_agg(c.station_id, ';' ORDER BY c.station_id) FROM (
        SELECT station_id FROM acl_stations WHERE token = a.token
        UNION SELECT station_id FROM acl_group_stations WHERE group_name = a.group_name) c
      WHERE (NOT EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token)
             OR c.station_id IN (SELECT station_id FROM acl_stations s WHERE s.token = a.token))
        AND (NOT EXISTS (SELECT 1 FROM acl_group_stations s WHERE s.group_name = a.group_name)
             OR c.station_id IN (SELECT station_id FROM acl_group_stations s WHERE s.group_name = a.group_name))), '')
  END AS stations,
  CASE WHEN g.valid_from IS NULL OR (a.valid_from IS NOT NULL AND a.valid_from >= g.valid_from) THEN a.valid_from ELSE g.valid_from END AS valid_from,
  CASE WHEN g.expires_at IS NULL OR (a.expires_at IS NOT NULL AND a.expires_at <= g.expires_at) THEN a.expires_at ELSE g.expires_at END AS expires_at,
  CASE WHEN a.allow_offline = 1 OR g.allow_offline = 1 THEN 1 ELSE 0 END AS allow_offline,
  a.note
FROM acl a LEFT JOIN acl_groups g ON g.name = a.group_name;
`,
  },
  {
    version: 2,
    name: 'queue bound without a shared row lock per accept: depth in per-backend shards, per-instance credits',
    // Every accept used to lock the one queue_depth row (and every statement changing the open
    // count updated it): the groups of all instances committed one after another, waiting on
    // that lock (bench/pgwaits.ts). Each backend now adds to its own shard (a pool's backends
    // have consecutive pids, so they rarely share one); queue_depth stays, as a view of the
    // sum. Accepts check no counter: instances take room in blocks (src/queue/pg/credits.ts)
    // and record here what they hold.
    sql: `
CREATE TABLE queue_depth_shard (
  shard integer PRIMARY KEY,
  open  bigint NOT NULL
);
INSERT INTO queue_depth_shard
  SELECT s, CASE WHEN s = 0 THEN (SELECT open FROM queue_depth WHERE id = 1) ELSE 0 END FROM generate_series(0, 63) s;
DROP TABLE queue_depth;
CREATE VIEW queue_depth AS SELECT 1 AS id, COALESCE(SUM(open), 0)::bigint AS open FROM queue_depth_shard;
CREATE OR REPLACE FUNCTION cg_depth_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE queue_depth_shard SET open = open + d FROM (SELECT SUM(cg_open(state)) AS d FROM new_rows) x
    WHERE shard = pg_backend_pid() % 64 AND d <> 0;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION cg_depth_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE queue_depth_shard SET open = open + d
    FROM (SELECT COALESCE((SELECT SUM(cg_open(state)) FROM new_rows), 0) - COALESCE((SELECT SUM(cg_open(state)) FROM old_rows), 0) AS d) x
    WHERE shard = pg_backend_pid() % 64 AND d <> 0;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION cg_depth_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE queue_depth_shard SET open = open - d FROM (SELECT SUM(cg_open(state)) AS d FROM old_rows) x
    WHERE shard = pg_backend_pid() % 64 AND d <> 0;
  RETURN NULL;
END $$;
-- Room each running instance holds for its accepts (unspent, or spent by a transaction not yet
-- committed, at its last grant); a dead instance's row goes with its leases.
CREATE TABLE queue_credit (
  instance_id text PRIMARY KEY,
  credits     bigint NOT NULL CHECK (credits >= 0),
  updated_at  bigint NOT NULL
);
`,
  },
];
