import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { ReservedSql, Sql } from 'postgres';
import { hashToken } from '../../core/token.ts';
import { noSuchGroup, type AclRecord } from '../acl.ts';
import { readAclCsv } from '../aclcsv.ts';
import { checkVersionAgainst, type ImportResult } from '../aclimport.ts';
import { usageError } from '../usage.ts';

// `acl import` on PostgreSQL. The file is streamed (src/cli/aclcsv.ts: the same checks,
// errors and line numbers as on SQLite) into a temporary table of this session with
// COPY FROM STDIN, a 64 KiB chunk at a time, so neither the file nor its rows are held in
// memory. Then one
// transaction applies it with a few set-based statements. By MVCC the service's decisions
// (one statement reads a request's entry and its stations) see the old list until the
// COMMIT and the new one after, never a mix; they are not blocked meanwhile, and accepts do
// not touch these tables at all. Anything refused (a bad line, an older list version, a
// group that does not exist) leaves the list as it was: staging writes only temp tables.

/** Advisory lock held for the import: one `acl import` at a time per database (as SQLite's file lock). */
const IMPORT_LOCK = 0x63670002;
/** Bytes of COPY text sent per write. */
const COPY_CHUNK = 64 * 1024;
/**
 * Memory for the session's temp tables and sorts (the server's defaults are 8 MB and 4 MB:
 * 1M staged rows were sorted on disk). temp_buffers must be set before the first temp table.
 */
const SESSION = "SET temp_buffers = '64MB'; SET work_mem = '64MB'";

const STAGE_TABLE = `
DROP TABLE IF EXISTS pg_temp.acl_stage, pg_temp.acl_put, pg_temp.acl_put_stations, pg_temp.acl_removals;
CREATE TEMP TABLE acl_stage (
  line          integer NOT NULL,
  token         text NOT NULL,
  token_hash    text NOT NULL,
  blocked       integer NOT NULL,
  expires_at    text,
  note          text,
  group_name    text,
  valid_from    text,
  allow_offline integer NOT NULL,
  token_type    text,
  stations      text NOT NULL,
  remove        boolean NOT NULL
)`;

// Before the transaction, so it holds its locks only while applying: a later row for a
// token wins (as on SQLite), removals apart; indexed and analysed (autovacuum never
// analyses temp tables, and the planner would guess their size).
const PREPARE_APPLY = `
CREATE TEMP TABLE acl_put AS
  SELECT DISTINCT ON (token) * FROM acl_stage WHERE NOT remove ORDER BY token, line DESC;
ALTER TABLE acl_put ADD PRIMARY KEY (token);
CREATE TEMP TABLE acl_put_stations AS
  SELECT DISTINCT token, unnest(string_to_array(stations, ';')) AS station_id FROM acl_put WHERE stations <> '';
ALTER TABLE acl_put_stations ADD PRIMARY KEY (token, station_id);
CREATE TEMP TABLE acl_removals AS SELECT DISTINCT token FROM acl_stage WHERE remove;
ALTER TABLE acl_removals ADD PRIMARY KEY (token);
DROP TABLE acl_stage;
ANALYZE acl_put; ANALYZE acl_put_stations; ANALYZE acl_removals`;

const CLEAN_UP = 'DROP TABLE IF EXISTS pg_temp.acl_stage, pg_temp.acl_put, pg_temp.acl_put_stations, pg_temp.acl_removals';

const COPY_STAGE = `COPY acl_stage (line, token, token_hash, blocked, expires_at, note, group_name, valid_from,
  allow_offline, token_type, stations, remove) FROM STDIN`;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
/** A field of COPY's text format: \N is NULL; backslash, tab and line ends escaped. */
const field = (v: string | null) => (v === null ? '\\N' : v.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!));

/** One acl_stage row as a line of COPY text. */
const copyLine = (r: AclRecord) => [
  String(r.line), r.token, hashToken(r.token), r.blocked ? '1' : '0', field(r.expires_at), field(r.note), field(r.group ?? null),
  field(r.valid_from ?? null), r.allow_offline ? '1' : '0', field(r.token_type ?? null), r.stations.join(';'), r.remove ? 't' : 'f',
].join('\t') + '\n';

async function currentVersion(conn: Sql): Promise<number> {
  const [row] = await conn<Array<{ version: number }>>`SELECT version FROM acl_list_version WHERE id = 1`;
  return row?.version ?? 0;
}

/**
 * Imports a CSV: a full update (`replace`: every entry not in the file goes) or a
 * differential one (add, replace, and remove rows marked `remove`), all or nothing, with
 * the OCPP list-version rule as on SQLite (src/cli/aclimport.ts).
 */
export async function pgAclImport(sql: Sql, file: string, opts: { replace: boolean; listVersion: number | null }): Promise<ImportResult> {
  const version = opts.listVersion;
  // One connection for the whole import: the temp tables and the advisory lock are its.
  const conn = await sql.reserve();
  let inTransaction = false;
  let locked = false;
  try {
    locked = (await conn<Array<{ ok: boolean }>>`SELECT pg_try_advisory_lock(${IMPORT_LOCK}) AS ok`)[0]!.ok;
    if (!locked) throw usageError('another acl import is running on this database; run this one when it has finished');
    await conn.unsafe(SESSION);
    // Refused before a long import, and again in the applying transaction.
    if (opts.replace) checkVersionAgainst(version, await currentVersion(conn), true);
    const imported = await stage(conn, file, opts.replace);
    await conn.unsafe(PREPARE_APPLY);

    await conn`BEGIN`;
    inTransaction = true;
    // FOR UPDATE: the version row stays as read until COMMIT.
    const [v] = await conn<Array<{ version: number }>>`SELECT version FROM acl_list_version WHERE id = 1 FOR UPDATE`;
    checkVersionAgainst(version, v?.version ?? 0, opts.replace);
    const removed = await apply(conn, opts.replace);
    if (version !== null) {
      await conn`INSERT INTO acl_list_version (id, version, update_type, updated_at)
          VALUES (1, ${version}, ${opts.replace ? 'full' : 'differential'}, cg_now_iso())
        ON CONFLICT (id) DO UPDATE SET version = excluded.version, update_type = excluded.update_type,
          updated_at = excluded.updated_at`;
    }
    await conn`COMMIT`;
    inTransaction = false;
    return { imported, removed, version };
  } finally {
    // On a lost connection there is nothing to undo: the server rolls back and drops both.
    try {
      if (inTransaction) await conn`ROLLBACK`;
      await conn.unsafe(CLEAN_UP);
      if (locked) await conn`SELECT pg_advisory_unlock(${IMPORT_LOCK})`;
    } catch {
      // The session is gone, and its temp tables and lock with it.
    } finally {
      conn.release();
    }
  }
}

/** Streams the CSV into acl_stage; resolves to the number of entries (rows that are not removals). */
async function stage(conn: ReservedSql, file: string, replace: boolean): Promise<number> {
  await conn.unsafe(STAGE_TABLE);
  // A full update checks each row's group as SQLite's does (first bad line); groups are few.
  const groups = replace ? new Set((await conn<Array<{ name: string }>>`SELECT name FROM acl_groups`).map((g) => g.name)) : null;
  const copy: Writable = await conn.unsafe(COPY_STAGE).writable();
  // The server's error (or ours, below) ends the COPY; it is awaited through `finished`.
  const finished = once(copy, 'finish');
  finished.catch(() => undefined);
  let chunk = '';
  let entries = 0;
  const send = async () => {
    const text = chunk;
    chunk = '';
    // Backpressure: wait while the socket is behind (rejects if the COPY failed meanwhile).
    if (!copy.write(text)) await once(copy, 'drain');
  };
  try {
    await readAclCsv(file, (r) => {
      if (groups) {
        if (r.remove) throw usageError(`CSV line ${r.line}: remove rows belong to a differential update, not --replace`);
        if (r.group && !groups.has(r.group)) throw usageError(`CSV line ${r.line}: ${noSuchGroup(r.group)}`);
      }
      if (!r.remove) entries++;
      chunk += copyLine(r);
      return chunk.length >= COPY_CHUNK ? send() : undefined;
    });
    if (chunk.length > 0) await send();
    copy.end();
    // 'finish' comes with the server's CommandComplete: every row is in acl_stage.
    await finished;
  } catch (err) {
    // CopyFail: the server discards what it got, and the connection is usable again.
    copy.destroy(err as Error);
    throw err;
  }
  return entries;
}

/** Applies the staged list inside the caller's transaction; resolves to the number of entries removed. */
async function apply(conn: ReservedSql, replace: boolean): Promise<number> {
  // A group removed since, or (differential) never there: the first line naming one.
  const [missing] = await conn<Array<{ line: number; group_name: string }>>`SELECT line, group_name FROM acl_put
    WHERE group_name IS NOT NULL AND group_name NOT IN (SELECT name FROM acl_groups) ORDER BY line LIMIT 1`;
  if (missing) throw usageError(`CSV line ${missing.line}: ${noSuchGroup(missing.group_name)}`);
  // Removed entries take their stations with them (ON DELETE CASCADE).
  const removed = replace
    ? await conn`DELETE FROM acl a WHERE NOT EXISTS (SELECT 1 FROM acl_put p WHERE p.token = a.token)`
    : await conn`DELETE FROM acl a USING acl_removals r WHERE a.token = r.token`;
  // Only entries the file changes are rewritten: an unchanged one keeps its row (and its
  // updated_at), so a full update that changes 1% of a 1M list writes 1% of it, not a
  // new version of every row (each would be a dead row for VACUUM and WAL to carry).
  await conn`UPDATE acl a SET blocked = p.blocked, expires_at = p.expires_at, note = p.note, group_name = p.group_name,
      valid_from = p.valid_from, allow_offline = p.allow_offline, token_type = p.token_type, updated_at = cg_now_iso()
    FROM acl_put p WHERE a.token = p.token
      AND (a.blocked, a.expires_at, a.note, a.group_name, a.valid_from, a.allow_offline, a.token_type)
        IS DISTINCT FROM (p.blocked, p.expires_at, p.note, p.group_name, p.valid_from, p.allow_offline, p.token_type)`;
  // New entries; ON CONFLICT for one an `acl add` wrote meanwhile (the file wins).
  await conn`INSERT INTO acl (token, blocked, expires_at, note, group_name, valid_from, allow_offline, token_type)
      SELECT token, blocked, expires_at, note, group_name, valid_from, allow_offline, token_type FROM acl_put p
      WHERE NOT EXISTS (SELECT 1 FROM acl a WHERE a.token = p.token)
    ON CONFLICT (token) DO UPDATE SET blocked = excluded.blocked, expires_at = excluded.expires_at, note = excluded.note,
      group_name = excluded.group_name, valid_from = excluded.valid_from, allow_offline = excluded.allow_offline,
      token_type = excluded.token_type, updated_at = cg_now_iso()`;
  // An imported entry has exactly the file's stations: the others go, the new ones come.
  await conn`DELETE FROM acl_stations s USING acl_put p WHERE s.token = p.token
    AND NOT EXISTS (SELECT 1 FROM acl_put_stations n WHERE n.token = s.token AND n.station_id = s.station_id)`;
  await conn`INSERT INTO acl_stations (token, station_id) SELECT token, station_id FROM acl_put_stations ON CONFLICT DO NOTHING`;
  // The cards are known now: they leave the unknown-token list.
  await conn`DELETE FROM unknown_tokens u USING acl_put p WHERE u.token_hash = p.token_hash`;
  return removed.count;
}
