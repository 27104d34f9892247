import type { Db } from '../queue/db.ts';
import { scopeOf, type Scope } from './scope.ts';
import { usageError } from './usage.ts';

// ACL groups: a token belongs to at most one; a blocked, expired or not-yet-valid group
// stops all its tokens, its station scope narrows theirs, and allow_offline on a group
// applies to every token in it (README "Authorization chain").

export interface GroupEntry {
  name: string;
  stations: string[];
  blocked: boolean;
  valid_from: string | null;
  expires_at: string | null;
  allow_offline: boolean;
  note: string | null;
}

export interface GroupRow extends Scope {
  name: string;
  tokens: number;
  blocked: boolean;
  valid_from: string | null;
  expires_at: string | null;
  allow_offline: boolean;
  note: string | null;
}

export function checkGroupName(name: string): string {
  if (!/^[A-Za-z0-9._~-]{1,64}$/.test(name)) throw usageError(`invalid group name ${JSON.stringify(name)}: 1 to 64 characters from A-Z a-z 0-9 . _ ~ -`);
  return name;
}

/** Adds or replaces a group (its station scope included), in one transaction. */
export function groupAdd(db: Db, g: GroupEntry): void {
  db.transaction(() => {
    db.prepare(`INSERT INTO acl_groups (name, blocked, valid_from, expires_at, allow_offline, note)
      VALUES (@name, @blocked, @valid_from, @expires_at, @allow_offline, @note)
      ON CONFLICT (name) DO UPDATE SET blocked = excluded.blocked, valid_from = excluded.valid_from, expires_at = excluded.expires_at,
        allow_offline = excluded.allow_offline, note = excluded.note, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')`).run({
      ...g,
      blocked: g.blocked ? 1 : 0,
      allow_offline: g.allow_offline ? 1 : 0,
    });
    db.prepare('DELETE FROM acl_group_stations WHERE group_name = ?').run(g.name);
    const add = db.prepare('INSERT OR IGNORE INTO acl_group_stations (group_name, station_id) VALUES (?, ?)');
    for (const s of g.stations) add.run(g.name, s);
  }).immediate();
}

/**
 * Removes an empty group. A group that still has tokens is refused: removing a blocked
 * group would otherwise quietly let its tokens charge again.
 */
export function groupRemove(db: Db, name: string): { removed: boolean; tokens: number } {
  let out = { removed: false, tokens: 0 };
  db.transaction(() => {
    const tokens = db.prepare('SELECT COUNT(*) FROM acl WHERE group_name = ?').pluck().get(name) as number;
    if (tokens > 0) {
      out = { removed: false, tokens };
      return;
    }
    // Rows of another generation of the list: an `acl import --replace` building or removing one.
    if (db.prepare('SELECT EXISTS (SELECT 1 FROM acl_rows WHERE group_name = ?)').pluck().get(name) === 1) {
      throw usageError(`group ${name} is used by an acl import in progress; remove it when the import has finished`);
    }
    out = { removed: db.prepare('DELETE FROM acl_groups WHERE name = ?').run(name).changes > 0, tokens: 0 };
  }).immediate();
  return out;
}

export function groupList(db: Db): GroupRow[] {
  const rows = db
    .prepare(`SELECT g.name, g.blocked, g.valid_from, g.expires_at, g.allow_offline, g.note,
        (SELECT COUNT(*) FROM acl a WHERE a.group_name = g.name) AS tokens,
        (SELECT group_concat(station_id, ';') FROM (SELECT station_id FROM acl_group_stations s WHERE s.group_name = g.name ORDER BY station_id)) AS stations
      FROM acl_groups g ORDER BY g.name`)
    .all() as Array<Omit<GroupRow, 'blocked' | 'allow_offline' | 'stations' | 'all_stations'> & { blocked: number; allow_offline: number; stations: string | null }>;
  return rows.map(groupRow);
}

/** A group row as both engines read it (flags as 0/1, stations as the ';'-joined scope). */
export type GroupSqlRow = Omit<GroupRow, 'blocked' | 'allow_offline' | 'stations' | 'all_stations'> & {
  blocked: number; allow_offline: number; stations: string | null;
};

export function groupRow(r: GroupSqlRow): GroupRow {
  return {
    name: r.name,
    tokens: r.tokens,
    ...scopeOf(r.stations),
    blocked: r.blocked === 1,
    valid_from: r.valid_from,
    expires_at: r.expires_at,
    allow_offline: r.allow_offline === 1,
    note: r.note,
  } as GroupRow;
}
