import { hashToken, maskToken } from '../core/token.ts';
import { TOKEN_RE, UUID_RE } from '../core/validate.ts';
import type { Db } from '../queue/db.ts';
import { usageError } from './usage.ts';

// ACL administration (SPEC §5). Every command is one transaction, so the running service
// sees either all of a change or none of it.

export interface AclEntry {
  token: string;
  stations: string[];
  expires_at: string | null;
  blocked: boolean;
  note: string | null;
  /** acl_groups name; the group must exist. */
  group?: string | null;
  valid_from?: string | null;
  /** Ask the upstream first; allowed when it cannot answer (README "Authorization chain"). */
  allow_offline?: boolean;
}

/** A CSV row: an entry, or (differential updates) a token to remove. */
export interface AclRecord extends AclEntry {
  line: number;
  remove: boolean;
}

export function checkToken(token: string): string {
  if (!TOKEN_RE.test(token)) throw usageError(`invalid token ${JSON.stringify(maskToken(token))}: must be 20 to 80 characters from A-Z a-z 0-9 . _ ~ -`);
  return token;
}

export function checkStation(id: string): string {
  if (!UUID_RE.test(id)) throw usageError(`invalid station id ${JSON.stringify(id)}: must be a UUID`);
  return id.toLowerCase();
}

export function checkExpiry(value: string, what = 'expiry'): string {
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(at)) throw usageError(`invalid ${what} ${JSON.stringify(value)}: use ISO-8601, e.g. 2027-01-31T23:59:59Z`);
  return new Date(at).toISOString();
}

/**
 * The ACL writes, their statements prepared once: an import of 100k rows used to prepare
 * four per row inside its transaction, holding the write lock for seconds and native
 * memory (each statement's) until collected. The caller opens the transaction.
 */
export function createAclWriter(db: Db) {
  const groupExists = db.prepare('SELECT 1 FROM acl_groups WHERE name = ?').pluck();
  const putEntry = db.prepare(`INSERT INTO acl (token, blocked, expires_at, note, group_name, valid_from, allow_offline)
    VALUES (@token, @blocked, @expires_at, @note, @group_name, @valid_from, @allow_offline)
    ON CONFLICT (token) DO UPDATE SET blocked = excluded.blocked, expires_at = excluded.expires_at,
      note = excluded.note, group_name = excluded.group_name, valid_from = excluded.valid_from,
      allow_offline = excluded.allow_offline, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')`);
  const clearStations = db.prepare('DELETE FROM acl_stations WHERE token = ?');
  const addStation = db.prepare('INSERT OR IGNORE INTO acl_stations (token, station_id) VALUES (?, ?)');
  const forgetUnknown = db.prepare('DELETE FROM unknown_tokens WHERE token_hash = ?');
  const removeEntry = db.prepare('DELETE FROM acl WHERE token = ?');

  return {
    /** Adds or replaces an entry with its station scope; `tokenHash` when already computed. */
    upsert(e: AclEntry, tokenHash = hashToken(e.token)): void {
      const group = e.group ?? null;
      if (group !== null && !groupExists.get(group)) {
        throw usageError(`no such group ${JSON.stringify(group)}: create it with "acl group add"`);
      }
      putEntry.run({
        token: e.token,
        blocked: e.blocked ? 1 : 0,
        expires_at: e.expires_at,
        note: e.note,
        group_name: group,
        valid_from: e.valid_from ?? null,
        allow_offline: e.allow_offline ? 1 : 0,
      });
      clearStations.run(e.token);
      for (const st of e.stations) addStation.run(e.token, st);
      // The card is known now: it leaves the unknown-token list.
      forgetUnknown.run(tokenHash);
    },
    /** Removes an entry (its stations go with it); false when there was none. */
    remove(token: string): boolean {
      return removeEntry.run(token).changes > 0;
    },
  };
}

export function aclAdd(db: Db, e: AclEntry): void {
  const writer = createAclWriter(db);
  db.transaction(() => writer.upsert(e)).immediate();
}

export function aclRemove(db: Db, token: string): boolean {
  return db.prepare('DELETE FROM acl WHERE token = ?').run(token).changes > 0;
}

export interface AclListRow {
  token: string;
  stations: string;
  expires_at: string | null;
  blocked: boolean;
  note: string | null;
}

/** Lists entries; tokens are masked unless `full` (an admin exporting the list). */
export function aclList(db: Db, full = false): AclListRow[] {
  const rows = db
    .prepare(`SELECT a.token, a.blocked, a.expires_at, a.note,
        (SELECT group_concat(station_id, ';') FROM (SELECT station_id FROM acl_stations s WHERE s.token = a.token ORDER BY station_id)) AS stations
      FROM acl a ORDER BY a.token`)
    .all() as Array<{ token: string; blocked: number; expires_at: string | null; note: string | null; stations: string | null }>;
  return rows.map((r) => ({
    token: full ? r.token : maskToken(r.token),
    stations: r.stations ?? '*',
    expires_at: r.expires_at,
    blocked: r.blocked === 1,
    note: r.note,
  }));
}

export interface ImportOptions {
  /** Full update: every entry not in the file is removed. Otherwise differential. */
  replace: boolean;
  /** OCPP SendLocalList listVersion; null = an unversioned import (the version is kept). */
  listVersion?: number | null;
}

export interface ListVersion {
  version: number;
  update_type: 'full' | 'differential' | null;
  updated_at: string | null;
}

/** The version of the last versioned import; 0 before any. */
export function listVersion(db: Db): ListVersion {
  const row = db.prepare('SELECT version, update_type, updated_at FROM acl_list_version WHERE id = 1').get() as ListVersion | undefined;
  return row ?? { version: 0, update_type: null, updated_at: null };
}

export function checkListVersion(raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1 || n > 2_147_483_647) throw usageError(`invalid list version ${JSON.stringify(raw)}: expected an integer from 1 to 2147483647`);
  return n;
}

/**
 * Imports the records of a CSV (readAclCsv) in one transaction: a full update (`replace`)
 * or a differential one. With a list version, the OCPP SendLocalList rule applies: a
 * differential update must carry a higher version than the list has, a full update at
 * least the same (re-sending the same full list is harmless); an older one is refused and
 * nothing changes.
 */
export function aclImport(db: Db, records: AclRecord[], opts: ImportOptions): { imported: number; removed: number; version: number | null } {
  const drop = records.filter((r) => r.remove);
  if (opts.replace && drop.length > 0) throw usageError(`CSV line ${drop[0]!.line}: remove rows belong to a differential update, not --replace`);
  const entries = records.filter((r) => !r.remove);
  const version = opts.listVersion ?? null;
  let removed = 0;
  const writer = createAclWriter(db);
  // Computed before the transaction: the write lock is held for the writes alone.
  const hashes = entries.map((e) => hashToken(e.token));
  const keep = opts.replace ? JSON.stringify(entries.map((e) => e.token)) : null;
  db.transaction(() => {
    if (version !== null) {
      const current = listVersion(db).version;
      if (opts.replace ? version < current : version <= current) {
        throw new Error(
          `list version ${version} refused: the list is at version ${current}; a ${opts.replace ? 'full update needs at least that' : 'differential update needs a higher one'}`,
        );
      }
    }
    if (keep !== null) {
      removed = db.prepare('DELETE FROM acl WHERE token NOT IN (SELECT value FROM json_each(?))').run(keep).changes;
    }
    for (const r of drop) removed += writer.remove(r.token) ? 1 : 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      try {
        writer.upsert(e, hashes[i]);
      } catch (err) {
        throw usageError(`CSV line ${e.line}: ${(err as Error).message}`);
      }
    }
    if (version !== null) {
      db.prepare(`INSERT INTO acl_list_version (id, version, update_type, updated_at) VALUES (1, @version, @type, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        ON CONFLICT (id) DO UPDATE SET version = excluded.version, update_type = excluded.update_type, updated_at = excluded.updated_at`).run({
        version,
        type: opts.replace ? 'full' : 'differential',
      });
    }
  }).immediate();
  return { imported: entries.length, removed, version };
}

export interface EffectiveRow {
  token: string;
  group: string | null;
  state: string;
  stations: string;
  valid_from: string | null;
  expires_at: string | null;
  allow_offline: boolean;
  note: string | null;
}

/** Each token's effective state now (the acl_effective view); tokens masked unless `full`. */
export function aclEffective(db: Db, full = false): EffectiveRow[] {
  const rows = db.prepare('SELECT * FROM acl_effective ORDER BY token').all() as Array<Omit<EffectiveRow, 'group' | 'allow_offline'> & { group_name: string | null; allow_offline: number }>;
  return rows.map((r) => ({
    token: full ? r.token : maskToken(r.token),
    group: r.group_name,
    state: r.state,
    stations: r.stations === '' ? '(none)' : r.stations,
    valid_from: r.valid_from,
    expires_at: r.expires_at,
    allow_offline: r.allow_offline === 1,
    note: r.note,
  }));
}
