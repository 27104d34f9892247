import type { Sql } from 'postgres';
import type { StationRow } from '../stations.ts';

// The site's registered stations on PostgreSQL (src/cli/stations.ts's statements).

export async function pgStationAdd(sql: Sql, stationId: string, name: string | null): Promise<void> {
  await sql`INSERT INTO stations (station_id, name) VALUES (${stationId}, ${name})
    ON CONFLICT (station_id) DO UPDATE SET name = excluded.name`;
}

export async function pgStationRemove(sql: Sql, stationId: string): Promise<boolean> {
  return (await sql`DELETE FROM stations WHERE station_id = ${stationId}`).count > 0;
}

export async function pgStationList(sql: Sql): Promise<StationRow[]> {
  return Array.from(await sql<StationRow[]>`SELECT station_id, name, created_at FROM stations ORDER BY station_id COLLATE "C"`);
}
