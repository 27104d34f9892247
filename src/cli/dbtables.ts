// What `chargegate db copy` moves from a SQLite file into PostgreSQL, table by table, in
// an order the foreign keys accept (groups before the ACL rows naming them). Each source
// is a SELECT on the SQLite file read in key order; the columns are those both schemas
// share (src/queue/schema.ts after every migration, src/queue/pg/schema.ts).
//
// Not copied: service_instance (which instances run is the target's own business),
// queue_depth (kept by the target's triggers as rows arrive), schema_migrations, and
// older ACL generations (acl_rows of a generation not in force: an interrupted
// `acl import --replace` leftover, never read).

export interface CopyTable {
  /** The table in PostgreSQL (and, but for the ACL, in SQLite). */
  name: string;
  columns: readonly string[];
  /** The SELECT on the SQLite file giving `columns`, in key order. */
  source: (now: number) => string;
  /** PostgreSQL's id is an identity column: copied as is, then the sequence moved past it. */
  identity?: boolean;
}

const plain = (table: string, columns: readonly string[], key: readonly string[]) => () =>
  `SELECT ${columns.join(', ')} FROM ${table} ORDER BY ${key.join(', ')}`;

const REQUEST_COLUMNS = [
  'id', 'station_id', 'driver_token', 'token_hash', 'token_mask', 'callback_url', 'state', 'created_at', 'updated_at',
  'due_at', 'locked_at', 'claim_count', 'attempts', 'decision_status', 'decision_reason', 'decision_source',
  'decision_latency_ms', 'decided_at', 'finished_at', 'last_error', 'replays', 'round_start_attempts', 'origin',
  'token_type', 'client',
] as const;

/**
 * Requests as the SQLite service would find them after a crash of the one holding them:
 * a claimed request (locked_at set) is released — due now, and an undecided one back to
 * queued — exactly as takeOver() does at start (src/queue/instance.ts). No lease of an
 * instance that will never run on the target is carried over; fencing (claim_count) is kept.
 */
function requestSource(now: number): string {
  const cols = REQUEST_COLUMNS.map((c) => {
    if (c === 'locked_at') return 'NULL AS locked_at';
    if (c === 'due_at') return `CASE WHEN locked_at IS NOT NULL THEN ${now} ELSE due_at END AS due_at`;
    if (c === 'state') {
      return "CASE WHEN locked_at IS NOT NULL AND decision_status IS NULL AND state IN ('queued','authorizing') " +
        "THEN 'queued' ELSE state END AS state";
    }
    return c;
  });
  return `SELECT ${cols.join(', ')} FROM charging_requests ORDER BY id`;
}

/** A table copied as the file has it; `columns` and `key` are space-separated names. */
function table(name: string, columns: string, key: string, extra: Partial<CopyTable> = {}): CopyTable {
  const cols = columns.split(/\s+/);
  return { name, columns: cols, source: plain(name, cols, key.split(' ')), ...extra };
}

export const COPY_TABLES: readonly CopyTable[] = [
  table('acl_groups', 'name blocked valid_from expires_at allow_offline note created_at updated_at', 'name'),
  // `acl` and `acl_stations` are views of the generation in force (SQLite migration 12).
  table('acl', `token blocked expires_at note created_at updated_at group_name valid_from allow_offline
    token_type`, 'token'),
  table('acl_stations', 'token station_id', 'token station_id'),
  table('acl_group_stations', 'group_name station_id', 'group_name station_id'),
  table('acl_list_version', 'id version update_type updated_at', 'id'),
  table('stations', 'station_id name created_at', 'station_id'),
  table('api_keys', 'name key_hash created_at expires_at last_used_at', 'name'),
  { name: 'charging_requests', columns: REQUEST_COLUMNS, source: requestSource },
  table('callback_attempts', 'id request_id attempt started_at duration_ms http_status error outcome', 'id',
    { identity: true }),
  table('idempotency_keys', 'key body_hash request_id created_at', 'key'),
  table('callback_origins', `origin attempts delivered consecutive_failures last_status last_attempt_at
    last_delivered_at`, 'origin'),
  table('unknown_tokens', `token_hash station_id token_mask seen_count first_seen_at last_seen_at last_status
    last_reason last_request_id`, 'token_hash station_id'),
  table('authorizer_cache', 'token_hash token_type station_id status reason stored_at fresh_until last_used_at',
    'token_hash token_type station_id'),
];
