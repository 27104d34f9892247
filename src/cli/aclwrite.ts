import { hashToken } from '../core/token.ts';
import type { Db } from '../queue/db.ts';
import type { AclEntry } from './acl.ts';

// Writing ACL entries in two steps. Staging: entries go into temp tables of this
// connection, in small transactions that take no lock on the database file (temp tables
// live in a separate temp file), so a CSV of any length is never held in memory. Then one
// write transaction applies the staged list with a few set-based statements, prepared
// once: the write lock is held for those alone (a row-by-row upsert held it for ~1.4 s
// per 10k rows, preparing four statements per row).

/** Staged rows written per temp-table transaction. */
const STAGE_BATCH = 1000;

const STAGING_TABLES = `
CREATE TEMP TABLE IF NOT EXISTS acl_stage (
  token         TEXT PRIMARY KEY,
  line          INTEGER NOT NULL,
  token_hash    TEXT NOT NULL,
  blocked       INTEGER NOT NULL,
  expires_at    TEXT,
  note          TEXT,
  group_name    TEXT,
  valid_from    TEXT,
  allow_offline INTEGER NOT NULL,
  token_type    TEXT
);
CREATE TEMP TABLE IF NOT EXISTS acl_stage_stations (
  token      TEXT NOT NULL,
  station_id TEXT NOT NULL,
  PRIMARY KEY (token, station_id)
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS acl_stage_removals (token TEXT PRIMARY KEY) WITHOUT ROWID;
DELETE FROM temp.acl_stage; DELETE FROM temp.acl_stage_stations; DELETE FROM temp.acl_stage_removals;`;

type Pending = { kind: 'put'; e: AclEntry; line: number } | { kind: 'remove'; token: string };

export interface AclStage {
  /** Stages an entry; a later one for the same token replaces it (as a later CSV row does). */
  put(e: AclEntry, line?: number): void;
  /** Stages a removal; removals are applied before the entries. */
  remove(token: string): void;
  /** Writes what is still buffered into the temp tables (before apply). */
  flush(): void;
  /** The first staged entry whose group does not exist, to be refused (call inside the write transaction). */
  missingGroup(): { line: number; group: string } | null;
  /**
   * Applies the staged list inside the caller's write transaction: with `replace`, first
   * removes every entry not staged. Returns the number of entries removed.
   */
  apply(opts: { replace: boolean }): number;
  /** Empties the temp tables. */
  clear(): void;
}

export function createAclStage(db: Db): AclStage {
  db.exec(STAGING_TABLES);
  const stagePut = db.prepare(`INSERT INTO temp.acl_stage
      (token, line, token_hash, blocked, expires_at, note, group_name, valid_from, allow_offline, token_type)
    VALUES (@token, @line, @token_hash, @blocked, @expires_at, @note, @group_name, @valid_from, @allow_offline, @token_type)
    ON CONFLICT (token) DO UPDATE SET line = excluded.line, blocked = excluded.blocked,
      expires_at = excluded.expires_at, note = excluded.note, group_name = excluded.group_name,
      valid_from = excluded.valid_from, allow_offline = excluded.allow_offline, token_type = excluded.token_type`);
  const stageClearStations = db.prepare('DELETE FROM temp.acl_stage_stations WHERE token = ?');
  const stageStation = db.prepare('INSERT OR IGNORE INTO temp.acl_stage_stations (token, station_id) VALUES (?, ?)');
  const stageRemoval = db.prepare('INSERT OR IGNORE INTO temp.acl_stage_removals (token) VALUES (?)');

  const firstMissingGroup = db.prepare(`SELECT line, group_name AS "group" FROM temp.acl_stage
    WHERE group_name IS NOT NULL AND group_name NOT IN (SELECT name FROM acl_groups) ORDER BY line LIMIT 1`);
  // In place, on the generation in force (acl_current): a differential update and `acl add`.
  // A full replace builds a new generation instead (src/cli/aclswap.ts).
  const GEN = '(SELECT gen FROM acl_current)';
  const removeUnlisted = db.prepare(
    `DELETE FROM acl_rows WHERE gen = ${GEN} AND token NOT IN (SELECT token FROM temp.acl_stage)`);
  const removeListed = db.prepare(
    `DELETE FROM acl_rows WHERE gen = ${GEN} AND token IN (SELECT token FROM temp.acl_stage_removals)`);
  // `WHERE true`: SQLite's parser needs it before ON CONFLICT in an INSERT … SELECT.
  const upsertEntries = db.prepare(`INSERT INTO acl_rows
      (gen, token, blocked, expires_at, note, group_name, valid_from, allow_offline, token_type)
    SELECT ${GEN}, token, blocked, expires_at, note, group_name, valid_from, allow_offline, token_type
    FROM temp.acl_stage WHERE true
    ON CONFLICT (gen, token) DO UPDATE SET blocked = excluded.blocked, expires_at = excluded.expires_at,
      note = excluded.note, group_name = excluded.group_name, valid_from = excluded.valid_from,
      allow_offline = excluded.allow_offline, token_type = excluded.token_type, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')`);
  const clearStations = db.prepare(
    `DELETE FROM acl_station_rows WHERE gen = ${GEN} AND token IN (SELECT token FROM temp.acl_stage)`);
  const addStations = db.prepare(`INSERT OR IGNORE INTO acl_station_rows (gen, token, station_id)
    SELECT ${GEN}, token, station_id FROM temp.acl_stage_stations`);
  // The cards are known now: they leave the unknown-token list.
  const forgetUnknown = db.prepare(
    'DELETE FROM unknown_tokens WHERE token_hash IN (SELECT token_hash FROM temp.acl_stage)');

  let pending: Pending[] = [];
  const write = db.transaction((batch: Pending[]) => {
    for (const p of batch) {
      if (p.kind === 'remove') {
        stageRemoval.run(p.token);
        continue;
      }
      const { e } = p;
      stagePut.run({
        token: e.token,
        line: p.line,
        token_hash: hashToken(e.token),
        blocked: e.blocked ? 1 : 0,
        expires_at: e.expires_at,
        note: e.note,
        group_name: e.group ?? null,
        valid_from: e.valid_from ?? null,
        allow_offline: e.allow_offline ? 1 : 0,
        token_type: e.token_type ?? null,
      });
      // A later row for the token replaces its stations too.
      stageClearStations.run(e.token);
      for (const s of e.stations) stageStation.run(e.token, s);
    }
  });
  const flush = () => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    write(batch);
  };
  const add = (p: Pending) => {
    pending.push(p);
    if (pending.length >= STAGE_BATCH) flush();
  };

  return {
    put: (e, line = 0) => add({ kind: 'put', e, line }),
    remove: (token) => add({ kind: 'remove', token }),
    flush,
    missingGroup: () => (firstMissingGroup.get() as { line: number; group: string } | undefined) ?? null,
    apply({ replace }) {
      flush();
      let removed = replace ? removeUnlisted.run().changes : 0;
      removed += removeListed.run().changes;
      upsertEntries.run();
      clearStations.run();
      addStations.run();
      forgetUnknown.run();
      return removed;
    },
    clear() {
      pending = [];
      db.exec('DELETE FROM temp.acl_stage; DELETE FROM temp.acl_stage_stations; DELETE FROM temp.acl_stage_removals;');
    },
  };
}
