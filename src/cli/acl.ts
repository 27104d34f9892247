import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { maskToken } from '../core/token.ts';
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
}

export function checkToken(token: string): string {
  if (!TOKEN_RE.test(token)) throw usageError(`invalid token ${JSON.stringify(maskToken(token))}: must be 20 to 80 characters from A-Z a-z 0-9 . _ ~ -`);
  return token;
}

export function checkStation(id: string): string {
  if (!UUID_RE.test(id)) throw usageError(`invalid station id ${JSON.stringify(id)}: must be a UUID`);
  return id.toLowerCase();
}

export function checkExpiry(value: string): string {
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(at)) throw usageError(`invalid expiry ${JSON.stringify(value)}: use ISO-8601, e.g. 2027-01-31T23:59:59Z`);
  return new Date(at).toISOString();
}

function upsert(db: Db, e: AclEntry): void {
  db.prepare(`INSERT INTO acl (token, blocked, expires_at, note) VALUES (@token, @blocked, @expires_at, @note)
    ON CONFLICT (token) DO UPDATE SET blocked = excluded.blocked, expires_at = excluded.expires_at,
      note = excluded.note, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')`).run({
    token: e.token,
    blocked: e.blocked ? 1 : 0,
    expires_at: e.expires_at,
    note: e.note,
  });
  db.prepare('DELETE FROM acl_stations WHERE token = ?').run(e.token);
  const add = db.prepare('INSERT OR IGNORE INTO acl_stations (token, station_id) VALUES (?, ?)');
  for (const s of e.stations) add.run(e.token, s);
}

export function aclAdd(db: Db, e: AclEntry): void {
  db.transaction(() => upsert(db, e)).immediate();
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

const TRUE = new Set(['1', 'true', 'yes', 'y', 'blocked']);
const FALSE = new Set(['', '0', 'false', 'no', 'n']);

/**
 * Parses an ACL CSV: a header row naming `token` and optionally `stations` (separated by
 * `;` or spaces; empty = every station), `expires_at`, `blocked`, `note`. A bad row names
 * its line and nothing is imported.
 */
export function parseAclCsv(text: string): AclEntry[] {
  let records: Array<Record<string, string>>;
  try {
    records = parse(text, { columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()), skip_empty_lines: true, trim: true, bom: true });
  } catch (err) {
    throw usageError(`cannot read CSV: ${(err as Error).message}`);
  }
  const known = new Set(['token', 'stations', 'expires_at', 'blocked', 'note']);
  const entries: AclEntry[] = [];
  records.forEach((rec, i) => {
    const line = i + 2;
    for (const k of Object.keys(rec)) if (!known.has(k)) throw usageError(`CSV column "${k}" is unknown (expected ${[...known].join(', ')})`);
    try {
      if (rec.token === undefined) throw usageError('missing token column');
      const blockedRaw = (rec.blocked ?? '').toLowerCase();
      if (!TRUE.has(blockedRaw) && !FALSE.has(blockedRaw)) throw usageError(`blocked must be true or false, got ${JSON.stringify(rec.blocked)}`);
      entries.push({
        token: checkToken(rec.token),
        stations: (rec.stations ?? '').split(/[;\s]+/).filter(Boolean).map(checkStation),
        expires_at: rec.expires_at ? checkExpiry(rec.expires_at) : null,
        blocked: TRUE.has(blockedRaw),
        note: rec.note ? rec.note : null,
      });
    } catch (err) {
      throw usageError(`CSV line ${line}: ${(err as Error).message}`);
    }
  });
  return entries;
}

/** Imports entries in one transaction; `replace` drops every entry not in the file. */
export function aclImport(db: Db, file: string, replace: boolean): { imported: number; removed: number } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw usageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const entries = parseAclCsv(text);
  let removed = 0;
  db.transaction(() => {
    if (replace) {
      const keep = JSON.stringify(entries.map((e) => e.token));
      removed = db.prepare('DELETE FROM acl WHERE token NOT IN (SELECT value FROM json_each(?))').run(keep).changes;
    }
    for (const e of entries) upsert(db, e);
  }).immediate();
  return { imported: entries.length, removed };
}
