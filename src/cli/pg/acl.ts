import type { Sql } from 'postgres';
import { hashToken } from '../../core/token.ts';
import { aclListRow, effectiveRow, noSuchGroup, type AclEntry, type AclListRow, type AclListSqlRow, type EffectiveRow, type EffectiveSqlRow, type ListVersion } from '../acl.ts';
import { usageError } from '../usage.ts';

// ACL entries on PostgreSQL: the statements of src/cli/acl.ts for the `acl` table itself
// (PostgreSQL needs no generations: a transaction's readers see the old rows or the new
// ones by MVCC). Orders use COLLATE "C", SQLite's byte order, so both engines list alike.

/** Adds or replaces one entry (and drops it from the unknown-token list), in one transaction. */
export async function pgAclAdd(sql: Sql, e: AclEntry): Promise<void> {
  await sql.begin(async (tx) => {
    // KEY SHARE: a concurrent `acl group remove` waits for this transaction, then sees the token.
    if (e.group && (await tx`SELECT 1 FROM acl_groups WHERE name = ${e.group} FOR KEY SHARE`).length === 0) {
      throw usageError(noSuchGroup(e.group));
    }
    await tx`INSERT INTO acl (token, blocked, expires_at, note, group_name, valid_from, allow_offline, token_type)
      VALUES (${e.token}, ${e.blocked ? 1 : 0}, ${e.expires_at}, ${e.note}, ${e.group ?? null}, ${e.valid_from ?? null},
        ${e.allow_offline ? 1 : 0}, ${e.token_type ?? null})
      ON CONFLICT (token) DO UPDATE SET blocked = excluded.blocked, expires_at = excluded.expires_at, note = excluded.note,
        group_name = excluded.group_name, valid_from = excluded.valid_from, allow_offline = excluded.allow_offline,
        token_type = excluded.token_type, updated_at = cg_now_iso()`;
    await tx`DELETE FROM acl_stations WHERE token = ${e.token}`;
    if (e.stations.length > 0) {
      await tx`INSERT INTO acl_stations (token, station_id)
        SELECT ${e.token}, s FROM unnest(${e.stations}::text[]) AS s ON CONFLICT DO NOTHING`;
    }
    // The card is known now: it leaves the unknown-token list.
    await tx`DELETE FROM unknown_tokens WHERE token_hash = ${hashToken(e.token)}`;
  });
}

export async function pgAclRemove(sql: Sql, token: string): Promise<boolean> {
  // Its stations go with it (ON DELETE CASCADE).
  return (await sql`DELETE FROM acl WHERE token = ${token}`).count > 0;
}

export async function pgAclList(sql: Sql, full: boolean): Promise<AclListRow[]> {
  const rows = await sql<AclListSqlRow[]>`
    SELECT a.token, a.blocked, a.expires_at, a.note,
      (SELECT string_agg(station_id, ';' ORDER BY station_id COLLATE "C") FROM acl_stations s WHERE s.token = a.token) AS stations
    FROM acl a ORDER BY a.token COLLATE "C"`;
  return rows.map((r) => aclListRow(r, full));
}

export async function pgAclEffective(sql: Sql, full: boolean): Promise<EffectiveRow[]> {
  const rows = await sql<EffectiveSqlRow[]>`SELECT e.token, e.group_name, e.state, e.stations, e.valid_from, e.expires_at, e.allow_offline, e.note, a.token_type
    FROM acl_effective e JOIN acl a ON a.token = e.token ORDER BY e.token COLLATE "C"`;
  return rows.map((r) => effectiveRow(r, full));
}

/** The version of the last versioned import; 0 before any. */
export async function pgListVersion(sql: Sql): Promise<ListVersion> {
  const [row] = await sql<ListVersion[]>`SELECT version, update_type, updated_at FROM acl_list_version WHERE id = 1`;
  return row ? { version: row.version, update_type: row.update_type, updated_at: row.updated_at } : { version: 0, update_type: null, updated_at: null };
}
