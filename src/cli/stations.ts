import type { Db } from '../queue/db.ts';

// The site's registered stations. While the table is empty every station_id is accepted;
// once it has rows, a request for an unregistered station decides `invalid`.

export function stationAdd(db: Db, stationId: string, name: string | null): void {
  db.prepare(`INSERT INTO stations (station_id, name) VALUES (?, ?)
    ON CONFLICT (station_id) DO UPDATE SET name = excluded.name`).run(stationId, name);
}

export function stationRemove(db: Db, stationId: string): boolean {
  return db.prepare('DELETE FROM stations WHERE station_id = ?').run(stationId).changes > 0;
}

/** A type, not an interface: `table()` takes it as a plain record. */
export type StationRow = {
  station_id: string;
  name: string | null;
  created_at: string;
};

export function stationList(db: Db): StationRow[] {
  return db.prepare('SELECT station_id, name, created_at FROM stations ORDER BY station_id').all() as StationRow[];
}
