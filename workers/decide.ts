import Database from 'better-sqlite3';
import { enter } from '../src/core/gate.ts';
import { hashToken } from '../src/core/token.ts';
import type { Decision, DecideItem, DecideTask, OfflineFact } from '../src/core/types.ts';
import { localVerdict, type AclRow } from './authorize/local.ts';
import { factsReader } from './facts.ts';

// Runs inside a worker thread, on the thread's own read-only connection: WAL lets it read
// while the main thread writes, and nothing here can take the writer's lock.
// The synchronous first step of the authorization chain: the local list, then (with an
// upstream configured) the authorizer cache. What neither decides comes back with a
// referral, and the dispatcher sends it on to the `authorize` task (workers/authorize.ts),
// so a local or cached decision never waits for an upstream call.

/** What deciding reads: SQLite statements, or the same lookups over facts (workers/facts.ts). */
interface Lookup {
  get(...args: any[]): unknown;
}

interface Reader {
  hasStations: Lookup;
  station: Lookup;
  aclToken: Lookup;
  aclGroup: Lookup;
  cache: Lookup;
  /** Runs a function inside one read transaction (one snapshot). */
  snapshot: <T>(fn: () => T) => T;
}

interface CacheRow {
  status: 'allowed' | 'not_allowed';
  reason: string;
  stored_at: number;
  fresh_until: number;
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
    // Two plain lookups instead of one LEFT JOIN: on this schema SQLite took ~40 µs for the
    // join against ~5 µs for both statements, and most tokens have no group.
    aclToken: db.prepare(`SELECT a.blocked, a.expires_at, a.valid_from, a.allow_offline, a.group_name, a.token_type,
        EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token) AS scoped,
        EXISTS (SELECT 1 FROM acl_stations s WHERE s.token = a.token AND s.station_id = @station) AS in_scope
      FROM acl a WHERE a.token = @token`),
    aclGroup: db.prepare(`SELECT g.name AS g_name, g.blocked AS g_blocked, g.expires_at AS g_expires_at, g.valid_from AS g_valid_from,
        g.allow_offline AS g_allow_offline,
        EXISTS (SELECT 1 FROM acl_group_stations s WHERE s.group_name = g.name) AS g_scoped,
        EXISTS (SELECT 1 FROM acl_group_stations s WHERE s.group_name = g.name AND s.station_id = @station) AS g_in_scope
      FROM acl_groups g WHERE g.name = @group`),
    cache: db.prepare(
      'SELECT status, reason, stored_at, fresh_until FROM authorizer_cache WHERE token_hash = ? AND token_type = ? AND station_id = ?',
    ),
    // Each statement outside a transaction is a read transaction of its own, and every
    // commit of the main thread in between makes SQLite drop this connection's page cache.
    // One transaction per batch: one snapshot, one cache check, for all its lookups.
    snapshot: <T>(fn: () => T): T => db.transaction(fn)(),
  };
  readers.set(dbPath, r);
  return r;
}

type Step = Omit<Decision, 'id' | 'latency_ms'>;

const NO_GROUP = { g_name: null, g_blocked: null, g_expires_at: null, g_valid_from: null, g_allow_offline: null, g_scoped: 0, g_in_scope: 0 };

/** The token's entry merged with its group's (the shape localVerdict reads). */
function aclRow(r: Reader, token: string, station: string): AclRow | undefined {
  const a = r.aclToken.get({ token, station }) as Omit<AclRow, keyof typeof NO_GROUP> | undefined;
  if (!a) return undefined;
  const g = a.group_name === null ? undefined : (r.aclGroup.get({ group: a.group_name, station }) as typeof NO_GROUP | undefined);
  return { ...a, ...(g ?? NO_GROUP) };
}

/**
 * The local list and cache steps for one request (SPEC §2, §5; README "Authorization
 * chain"). Pure given the rows it reads. `authorizer` is DecideTask.authorizer: without
 * it the local list is the only authority and always decides.
 */
export function decideOne(r: Reader, hasStations: boolean, item: DecideItem, now: number, authorizer?: DecideTask['authorizer']): Step {
  const station = item.station_id.toLowerCase();
  if (hasStations && !r.station.get(station)) {
    return { status: 'invalid', reason: 'station_not_registered', source: 'local_list' };
  }
  const v = localVerdict(aclRow(r, item.driver_token, station), now, item.token_type);
  if (v.final) return { status: v.status, reason: v.reason, source: 'local_list' };
  if (!authorizer) {
    if (v.allowOffline) return { status: 'allowed', reason: v.reason, source: 'local_list' };
    return { status: 'not_allowed', reason: v.reason, source: 'local_list', ...(v.listed ? {} : { unknown_token: true }) };
  }
  const token_hash = hashToken(item.driver_token);
  const cached = r.cache.get(token_hash, item.token_type, station) as CacheRow | undefined;
  if (cached && cached.fresh_until > now) {
    const d: Step = { status: cached.status, reason: cached.reason, source: 'cache', cache_used: { token_hash, token_type: item.token_type, station_id: station } };
    if (!v.listed && cached.reason === 'unknown_token') d.unknown_token = true;
    return d;
  }
  // What the offline rules may use if the upstream cannot answer: the operator's explicit
  // allow_offline first, then a stale-but-recent upstream allowed, then "nobody knows it".
  let offline: OfflineFact = 'none';
  if (v.allowOffline) offline = 'allow_offline';
  else if (cached?.status === 'allowed' && now - cached.stored_at <= authorizer.offlineCacheMaxAgeMs) offline = 'cached_allowed';
  else if (!v.listed && !cached) offline = 'unknown_token';
  return { status: 'unknown', reason: 'referred', source: 'upstream', referral: { token_hash, station, offline, listed: v.listed } };
}

export function decide(task: DecideTask): Decision[] | null {
  if (!enter(task.gate)) return null;
  const t0 = performance.now();
  const r = task.facts ? factsReader(task.facts) : reader(task.dbPath, task.nativeBinding);
  const out: Decision[] = new Array(task.items.length);
  const decideAll = () => {
    const hasStations = r.hasStations.get() === 1;
    for (let i = 0; i < task.items.length; i++) {
      const item = task.items[i]!;
      let d: Step;
      try {
        d = decideOne(r, hasStations, item, task.now, task.authorizer);
      } catch {
        d = { status: 'unknown', reason: 'database_error', source: 'system' };
      }
      out[i] = { id: item.id, ...d, latency_ms: Math.round(performance.now() - t0) };
    }
  };
  try {
    r.snapshot(decideAll);
  } catch {
    // The snapshot itself failed (database gone): every item is undecidable.
    for (let i = 0; i < task.items.length; i++) {
      out[i] = { id: task.items[i]!.id, status: 'unknown', reason: 'database_error', source: 'system', latency_ms: Math.round(performance.now() - t0) };
    }
  }
  return out;
}
