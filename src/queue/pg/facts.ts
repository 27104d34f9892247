import type { Sql } from 'postgres';
import { hashToken } from '../../core/token.ts';
import type { DecideFacts, DecideItem } from '../../core/types.ts';

// Decisions on PostgreSQL: worker threads hold no connections; the main thread reads what
// a batch needs (three or four queries for up to 64 requests, pipelined on the pool) and
// sends it with the task. The rows have the shapes workers/decide.ts's SQLite statements
// return (integers for flags and EXISTS), so the decision code is the same for both.
// docs/postgres.md records the measurement behind this choice.

export async function decideFacts(sql: Sql, items: DecideItem[], withCache: boolean): Promise<DecideFacts> {
  const stations = items.map((it) => it.station_id.toLowerCase());
  const tokens = items.map((it) => it.driver_token);
  const [st, acl, cache] = await Promise.all([
    sql<Array<{ any: boolean; found: string[] }>>`SELECT EXISTS (SELECT 1 FROM stations) AS any,
      ARRAY(SELECT station_id FROM stations WHERE station_id = ANY(${stations}::text[])) AS found`,
    sql<Array<Record<string, unknown> & { i_token: string; i_station: string }>>`SELECT i.token AS i_token, i.station AS i_station,
        a.blocked, a.expires_at, a.valid_from, a.allow_offline, a.group_name, a.token_type,
        EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token)::int AS scoped,
        EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token AND s.station_id = i.station)::int AS in_scope
      FROM unnest(${tokens}::text[], ${stations}::text[]) AS i(token, station) JOIN acl a ON a.token = i.token`,
    withCache
      ? sql<Array<Record<string, unknown> & { token_hash: string; token_type: string; station_id: string }>>`SELECT
            c.token_hash, c.token_type, c.station_id, c.status, c.reason, c.stored_at, c.fresh_until
          FROM unnest(${tokens.map(hashToken)}::text[], ${items.map((it) => it.token_type)}::text[], ${stations}::text[])
            AS i(token_hash, token_type, station)
          JOIN authorizer_cache c ON c.token_hash = i.token_hash AND c.token_type = i.token_type AND c.station_id = i.station`
      : Promise.resolve([]),
  ]);
  const grouped = acl.filter((r) => r.group_name !== null);
  const groups = grouped.length === 0 ? [] : await sql<Array<Record<string, unknown> & { i_group: string; i_station: string }>>`SELECT
        i.grp AS i_group, i.station AS i_station, g.name AS g_name, g.blocked AS g_blocked, g.expires_at AS g_expires_at,
        g.valid_from AS g_valid_from, g.allow_offline AS g_allow_offline,
        EXISTS (SELECT 1 FROM acl_group_stations s WHERE s.group_name = g.name)::int AS g_scoped,
        EXISTS (SELECT 1 FROM acl_group_stations s WHERE s.group_name = g.name AND s.station_id = i.station)::int AS g_in_scope
      FROM unnest(${grouped.map((r) => r.group_name as string)}::text[], ${grouped.map((r) => r.i_station)}::text[]) AS i(grp, station)
      JOIN acl_groups g ON g.name = i.grp`;
  return {
    hasStations: st[0]!.any,
    stations: st[0]!.found,
    acl: acl.map(({ i_token, i_station, ...row }) => [i_token, i_station, row]),
    groups: groups.map(({ i_group, i_station, ...row }) => [i_group, i_station, row]),
    cache: cache.map(({ token_hash, token_type, station_id, ...row }) => [token_hash, token_type, station_id, row]),
  };
}
