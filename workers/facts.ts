import type { DecideFacts } from '../src/core/types.ts';

// A reader over facts the main thread looked up (PostgreSQL, src/queue/pg/facts.ts), with
// the shape of workers/decide.ts's SQLite statements: the same decision code runs on both.

const key = (...parts: string[]) => parts.join('\u0000');

export function factsReader(f: DecideFacts) {
  const stations = new Set(f.stations);
  const acl = new Map(f.acl.map(([token, station, row]) => [key(token, station), row]));
  const groups = new Map(f.groups.map(([group, station, row]) => [key(group, station), row]));
  const cache = new Map(f.cache.map(([hash, type, station, row]) => [key(hash, type, station), row]));
  return {
    hasStations: { get: () => (f.hasStations ? 1 : 0) },
    station: { get: (station: string) => (stations.has(station) ? 1 : undefined) },
    aclToken: { get: (p: { token: string; station: string }) => acl.get(key(p.token, p.station)) },
    aclGroup: { get: (p: { group: string; station: string }) => groups.get(key(p.group, p.station)) },
    cache: { get: (hash: string, type: string, station: string) => cache.get(key(hash, type, station)) },
    snapshot: <T>(fn: () => T): T => fn(),
  };
}
