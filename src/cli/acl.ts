import { maskToken } from '../core/token.ts';
import { TOKEN_RE, TOKEN_TYPES, UUID_RE } from '../core/validate.ts';
import type { Db } from '../queue/db.ts';
import { createAclStage } from './aclwrite.ts';
import { usageError } from './usage.ts';
import { scopeOf, type Scope } from './scope.ts';

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
  /** Only requests naming this OCPI token type match the entry; null = any type. */
  token_type?: string | null;
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

export function checkTokenType(value: string): string {
  const v = value.trim().toUpperCase();
  if (!(TOKEN_TYPES as readonly string[]).includes(v)) throw usageError(`invalid token type ${JSON.stringify(value)}: expected one of ${TOKEN_TYPES.join(', ')}`);
  return v;
}

/** `--since`: an ISO-8601 time, or an age back from now (30m, 24h, 7d). */
export function checkSince(value: string, now: number): number {
  const age = /^(\d+)([mhd])$/.exec(value.trim());
  if (age) return now - Number(age[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 'm' | 'h' | 'd'];
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(at)) {
    throw usageError(`invalid --since ${JSON.stringify(value)}: expected an ISO-8601 time (2026-11-30, 2026-11-30T08:00:00Z) or an age (30m, 24h, 7d)`);
  }
  return at;
}

export function checkExpiry(value: string, what = 'expiry'): string {
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(at)) throw usageError(`invalid ${what} ${JSON.stringify(value)}: use ISO-8601, e.g. 2027-01-31T23:59:59Z`);
  return new Date(at).toISOString();
}

/** Adds or replaces one entry (and drops it from the unknown-token list), in one transaction. */
export function aclAdd(db: Db, e: AclEntry): void {
  const stage = createAclStage(db);
  try {
    stage.put(e);
    stage.flush();
    db.transaction(() => {
      const missing = stage.missingGroup();
      if (missing) throw usageError(noSuchGroup(missing.group));
      stage.apply({ replace: false });
    }).immediate();
  } finally {
    stage.clear();
  }
}

export const noSuchGroup = (group: string) => `no such group ${JSON.stringify(group)}: create it with "acl group add"`;

export function aclRemove(db: Db, token: string): boolean {
  // On the table, not the view: a delete through the view's trigger reports no changes.
  return db.prepare('DELETE FROM acl_rows WHERE gen = (SELECT gen FROM acl_current) AND token = ?').run(token).changes > 0;
}

export interface AclListRow extends Scope {
  token: string;
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
    .all() as AclListSqlRow[];
  return rows.map((r) => aclListRow(r, full));
}

/** An `acl list` row as both engines read it (blocked as 0/1, stations as the ';'-joined scope). */
export interface AclListSqlRow { token: string; blocked: number; expires_at: string | null; note: string | null; stations: string | null }

export function aclListRow(r: AclListSqlRow, full: boolean): AclListRow {
  return {
    token: full ? r.token : maskToken(r.token),
    ...scopeOf(r.stations),
    expires_at: r.expires_at,
    blocked: r.blocked === 1,
    note: r.note,
  };
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

export interface EffectiveRow extends Scope {
  token: string;
  group: string | null;
  state: string;
  valid_from: string | null;
  expires_at: string | null;
  allow_offline: boolean;
  note: string | null;
  /** The OCPI token type the entry is limited to; '*' = any type. */
  token_type: string;
}

/**
 * Each token's effective state now (the acl_effective view, with the entry's token type
 * limit); tokens masked unless `full`. `acl list` keeps its original shape for scripts.
 */
export function aclEffective(db: Db, full = false): EffectiveRow[] {
  const rows = db.prepare('SELECT e.*, a.token_type FROM acl_effective e JOIN acl a ON a.token = e.token ORDER BY e.token').all() as Array<
    Omit<EffectiveRow, 'group' | 'allow_offline' | 'stations' | 'all_stations' | 'token_type'> & {
      group_name: string | null; allow_offline: number; stations: string; token_type: string | null;
    }
  >;
  return rows.map((r) => effectiveRow(r, full));
}

/** A row of the acl_effective view (joined with the entry's token_type) as both engines print it. */
export interface EffectiveSqlRow {
  token: string; group_name: string | null; state: string; stations: string; valid_from: string | null;
  expires_at: string | null; allow_offline: number; note: string | null; token_type: string | null;
}

export function effectiveRow(r: EffectiveSqlRow, full: boolean): EffectiveRow {
  return {
    token: full ? r.token : maskToken(r.token),
    group: r.group_name,
    state: r.state,
    ...scopeOf(r.stations),
    valid_from: r.valid_from,
    expires_at: r.expires_at,
    allow_offline: r.allow_offline === 1,
    note: r.note,
    token_type: r.token_type ?? '*',
  } as EffectiveRow;
}
