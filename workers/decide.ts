import Database from 'better-sqlite3';
import type { Decision, DecideItem, DecideTask } from '../src/core/types.ts';

// Runs inside a worker thread, on the thread's own read-only connection: WAL lets it read
// while the main thread writes, and nothing here can take the writer's lock.

interface Reader {
  hasStations: Database.Statement;
  station: Database.Statement;
  acl: Database.Statement;
}

interface AclRow {
  blocked: number;
  expires_at: string | null;
  scoped: number;
  in_scope: number;
}

const readers = new Map<string, Reader>();

function reader(dbPath: string, nativeBinding: string | undefined): Reader {
  let r = readers.get(dbPath);
  if (r) return r;
  const db = new Database(dbPath, { readonly: true, fileMustExist: true, ...(nativeBinding ? { nativeBinding } : {}) });
  db.pragma('busy_timeout = 1000');
  r = {
    hasStations: db.prepare('SELECT EXISTS (SELECT 1 FROM stations)').pluck(),
    station: db.prepare('SELECT 1 FROM stations WHERE station_id = ?').pluck(),
    acl: db.prepare(`SELECT a.blocked, a.expires_at,
        EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token) AS scoped,
        EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token AND s.station_id = @station) AS in_scope
      FROM acl a WHERE a.token = @token`),
  };
  readers.set(dbPath, r);
  return r;
}

/** The local-list decision for one request (SPEC §2, §5). Pure given the rows it reads. */
export function decideOne(r: Reader, hasStations: boolean, item: DecideItem, now: number): Omit<Decision, 'id' | 'latency_ms'> {
  const station = item.station_id.toLowerCase();
  if (hasStations && !r.station.get(station)) {
    return { status: 'invalid', reason: 'station_not_registered', source: 'local_list' };
  }
  const row = r.acl.get({ token: item.driver_token, station }) as AclRow | undefined;
  if (!row) return { status: 'not_allowed', reason: 'unknown_token', source: 'local_list' };
  if (row.blocked) return { status: 'not_allowed', reason: 'blocked', source: 'local_list' };
  if (row.expires_at !== null) {
    const at = Date.parse(row.expires_at);
    // An expiry that cannot be read fails closed.
    if (Number.isNaN(at) || at <= now) return { status: 'not_allowed', reason: 'expired', source: 'local_list' };
  }
  if (row.scoped && !row.in_scope) return { status: 'not_allowed', reason: 'station_not_permitted', source: 'local_list' };
  return { status: 'allowed', reason: 'acl_match', source: 'local_list' };
}

export function decide(task: DecideTask): Decision[] {
  const t0 = performance.now();
  const r = reader(task.dbPath, task.nativeBinding);
  const hasStations = r.hasStations.get() === 1;
  const out: Decision[] = new Array(task.items.length);
  for (let i = 0; i < task.items.length; i++) {
    const item = task.items[i]!;
    let d: Omit<Decision, 'id' | 'latency_ms'>;
    try {
      d = decideOne(r, hasStations, item, task.now);
    } catch {
      d = { status: 'unknown', reason: 'database_error', source: 'system' };
    }
    out[i] = { id: item.id, ...d, latency_ms: Math.round(performance.now() - t0) };
  }
  return out;
}
