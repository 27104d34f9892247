import type { Sql } from 'postgres';
import { groupRow, type GroupEntry, type GroupRow, type GroupSqlRow } from '../groups.ts';

// ACL groups on PostgreSQL: src/cli/groups.ts's statements, same rules and results.

/** Adds or replaces a group (its station scope included), in one transaction. */
export async function pgGroupAdd(sql: Sql, g: GroupEntry): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`INSERT INTO acl_groups (name, blocked, valid_from, expires_at, allow_offline, note)
      VALUES (${g.name}, ${g.blocked ? 1 : 0}, ${g.valid_from}, ${g.expires_at}, ${g.allow_offline ? 1 : 0}, ${g.note})
      ON CONFLICT (name) DO UPDATE SET blocked = excluded.blocked, valid_from = excluded.valid_from,
        expires_at = excluded.expires_at, allow_offline = excluded.allow_offline, note = excluded.note, updated_at = cg_now_iso()`;
    await tx`DELETE FROM acl_group_stations WHERE group_name = ${g.name}`;
    if (g.stations.length > 0) {
      await tx`INSERT INTO acl_group_stations (group_name, station_id)
        SELECT ${g.name}, s FROM unnest(${g.stations}::text[]) AS s ON CONFLICT DO NOTHING`;
    }
  });
}

/**
 * Removes an empty group; one that still has tokens is refused (removing a blocked group
 * would quietly let its tokens charge again). The group's row is locked first: an `acl add`
 * or `acl import` that is adding tokens to it holds it (the foreign key's KEY SHARE), so
 * this waits for that to commit and then counts its tokens.
 */
export async function pgGroupRemove(sql: Sql, name: string): Promise<{ removed: boolean; tokens: number }> {
  return sql.begin(async (tx) => {
    if ((await tx`SELECT 1 FROM acl_groups WHERE name = ${name} FOR UPDATE`).length === 0) return { removed: false, tokens: 0 };
    const [row] = await tx<Array<{ n: number }>>`SELECT COUNT(*) AS n FROM acl WHERE group_name = ${name}`;
    if (row!.n > 0) return { removed: false, tokens: row!.n };
    await tx`DELETE FROM acl_groups WHERE name = ${name}`;
    return { removed: true, tokens: 0 };
  });
}

export async function pgGroupList(sql: Sql): Promise<GroupRow[]> {
  const rows = await sql<GroupSqlRow[]>`SELECT g.name, g.blocked, g.valid_from, g.expires_at, g.allow_offline, g.note,
      (SELECT COUNT(*) FROM acl a WHERE a.group_name = g.name) AS tokens,
      (SELECT string_agg(station_id, ';' ORDER BY station_id COLLATE "C") FROM acl_group_stations s
        WHERE s.group_name = g.name) AS stations
    FROM acl_groups g ORDER BY g.name COLLATE "C"`;
  return rows.map(groupRow);
}
