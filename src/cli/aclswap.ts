import { hashToken } from '../core/token.ts';
import type { Db } from '../queue/db.ts';
import { tryLock } from '../queue/lock.ts';
import { noSuchGroup, type AclRecord } from './acl.ts';
import { readAclCsv } from './aclcsv.ts';
import { usageError } from './usage.ts';

// `acl import --replace` of a list of any length while the service runs. The list is kept
// in generations (schema migration 12): the file is streamed into the next generation in
// short write transactions, sized to hold the write lock ~20 ms each, with the lock free
// while the next rows are parsed; one short transaction then points acl_current at it, so
// a reader (the decision's one read transaction per batch) sees the old list or the new
// one, never a mix; the old generation is then removed in short transactions too.
// Nothing is kept in memory per row: 1,000,000 entries staged in temp tables and applied
// in one transaction held the write lock ~5.5 s; staged in memory they would not fit.
// Until the switch, readers see the old list whatever happens: a bad line at row 900,000,
// a refused list version or a crash leave only rows of a generation nobody reads, which
// are removed at once (or by the next import, for a crash).

/** How long one write transaction of the import aims to hold the lock. */
const TARGET_HOLD_MS = 20;
const FIRST_CHUNK = 500;
const MIN_CHUNK = 50;
const MAX_CHUNK = 20_000;

/** Rows per transaction, resized after each one so it holds the lock about TARGET_HOLD_MS. */
function chunkSizer() {
  let n = FIRST_CHUNK;
  return {
    get size() {
      return n;
    },
    took(rows: number, ms: number) {
      const perRow = Math.max(ms, 0.5) / Math.max(rows, 1);
      n = Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, Math.floor(TARGET_HOLD_MS / perRow)));
    },
  };
}

/** Lets a writer that waits for the lock (the service's commit, in SQLite's busy handler) in. */
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const since = (t0: number) => performance.now() - t0;

export function currentGen(db: Db): number {
  return db.prepare('SELECT gen FROM acl_current WHERE id = 1').pluck().get() as number;
}

/** Removes one generation in short transactions (its stations go with it: ON DELETE CASCADE). */
export async function dropGen(db: Db, gen: number): Promise<number> {
  const del = db.prepare('DELETE FROM acl_rows WHERE gen = ? AND token IN (SELECT token FROM acl_rows WHERE gen = ? LIMIT ?)');
  const sizer = chunkSizer();
  let total = 0;
  for (;;) {
    const t0 = performance.now();
    const n = sizer.size;
    const removed = db.transaction(() => del.run(gen, gen, n).changes).immediate();
    const ms = since(t0);
    total += removed;
    if (removed < n) return total;
    sizer.took(n, ms);
    await pause(Math.max(2, ms / 2));
  }
}

/** Rows of generations other than the one in force: what an import that died left. */
async function dropLeftovers(db: Db, current: number): Promise<void> {
  const min = db.prepare('SELECT MIN(gen) FROM acl_rows').pluck();
  const max = db.prepare('SELECT MAX(gen) FROM acl_rows').pluck();
  for (let g = min.get() as number | null; g !== null && g < current; g = min.get() as number | null) await dropGen(db, g);
  for (let g = max.get() as number | null; g !== null && g > current; g = max.get() as number | null) await dropGen(db, g);
}

/** One `acl import` at a time per database file: the lock is a file lock, gone with the process. */
function importLock(db: Db) {
  if (db.memory) return { release() {} };
  const lock = tryLock(`${db.name}.acl-import`, { waitMs: 0 });
  if (!lock) throw usageError('another acl import is running on this database; run this one when it has finished');
  return lock;
}

export interface ReplaceResult {
  imported: number;
  removed: number;
}

/**
 * Replaces the whole list with the CSV `file`. `onSwitch` runs inside the switching
 * transaction (the list version's check and record); what it throws changes nothing.
 */
export async function replaceList(db: Db, file: string, onSwitch: () => void): Promise<ReplaceResult> {
  const lock = importLock(db);
  // Rows of a generation nobody reads need no fsync each; the switch commits with FULL,
  // and its WAL sync makes every frame before it durable too.
  db.pragma('synchronous = NORMAL');
  let built: number | null = null;
  try {
    const old = currentGen(db);
    await dropLeftovers(db, old);
    const gen = ((db.prepare('SELECT MAX(gen) FROM acl_rows').pluck().get() as number | null) ?? old) + 1;
    built = gen;
    const imported = await build(db, file, old, gen);

    const removed = db
      .prepare('SELECT COUNT(*) FROM acl_rows o WHERE o.gen = ? AND NOT EXISTS (SELECT 1 FROM acl_rows n WHERE n.gen = ? AND n.token = o.token)')
      .pluck()
      .get(old, gen) as number;
    db.pragma('synchronous = FULL');
    db.transaction(() => {
      onSwitch();
      db.prepare('UPDATE acl_current SET gen = ? WHERE id = 1').run(gen);
      // The cards are known now: they leave the unknown-token list.
      const forget = db.prepare('DELETE FROM unknown_tokens WHERE token_hash = ?');
      for (const h of imported.known) forget.run(h);
    }).immediate();
    built = null;
    db.pragma('synchronous = NORMAL');
    await dropGen(db, old);
    return { imported: imported.rows, removed };
  } finally {
    try {
      if (built !== null) await dropGen(db, built);
    } finally {
      db.pragma('synchronous = FULL');
      lock.release();
    }
  }
}

/** Streams the CSV into generation `gen`; a later row for a token replaces the earlier one. */
async function build(db: Db, file: string, old: number, gen: number): Promise<{ rows: number; known: string[] }> {
  const groups = new Set(db.prepare('SELECT name FROM acl_groups').pluck().all() as string[]);
  // unknown_tokens is bounded (UNKNOWN_TOKENS_MAX, 10,000 rows): its hashes fit in memory.
  const unknown = new Set(db.prepare('SELECT DISTINCT token_hash FROM unknown_tokens').pluck().all() as string[]);
  const known: string[] = [];
  const put = db.prepare(`INSERT INTO acl_rows
      (gen, token, blocked, expires_at, note, created_at, updated_at, group_name, valid_from, allow_offline, token_type)
    VALUES (@gen, @token, @blocked, @expires_at, @note,
      COALESCE((SELECT created_at FROM acl_rows WHERE gen = @old AND token = @token), @now), @now,
      @group_name, @valid_from, @allow_offline, @token_type)
    ON CONFLICT (gen, token) DO UPDATE SET blocked = excluded.blocked, expires_at = excluded.expires_at,
      note = excluded.note, group_name = excluded.group_name, valid_from = excluded.valid_from,
      allow_offline = excluded.allow_offline, token_type = excluded.token_type`);
  // A later row for the token replaces its stations too.
  const clearStations = db.prepare('DELETE FROM acl_station_rows WHERE gen = ? AND token = ?');
  const addStation = db.prepare('INSERT OR IGNORE INTO acl_station_rows (gen, token, station_id) VALUES (?, ?, ?)');
  const now = new Date().toISOString();
  const write = db.transaction((rows: AclRecord[]) => {
    for (const r of rows) {
      put.run({
        gen, old, now, token: r.token, blocked: r.blocked ? 1 : 0, expires_at: r.expires_at, note: r.note,
        group_name: r.group ?? null, valid_from: r.valid_from ?? null, allow_offline: r.allow_offline ? 1 : 0,
        token_type: r.token_type ?? null,
      });
      clearStations.run(gen, r.token);
      for (const s of r.stations) addStation.run(gen, r.token, s);
    }
  });

  const sizer = chunkSizer();
  let pending: AclRecord[] = [];
  const flush = async () => {
    const t0 = performance.now();
    write.immediate(pending);
    const ms = since(t0);
    sizer.took(pending.length, ms);
    pending = [];
    await pause(Math.max(2, ms / 2));
  };
  const rows = await readAclCsv(file, (r) => {
    if (r.remove) throw usageError(`CSV line ${r.line}: remove rows belong to a differential update, not --replace`);
    if (r.group && !groups.has(r.group)) throw usageError(`CSV line ${r.line}: ${noSuchGroup(r.group)}`);
    if (unknown.size > 0) {
      const h = hashToken(r.token);
      if (unknown.has(h)) known.push(h);
    }
    pending.push(r);
    return pending.length >= sizer.size ? flush() : undefined;
  });
  if (pending.length > 0) await flush();
  return { rows, known };
}
