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

/**
 * How long one write transaction of the import aims to hold the lock. After each, the lock
 * stays free at least as long again: the service waits for it in SQLite's busy handler,
 * which retries after 1, 2, 5, 10, 15 ms…, so it gets in within ~20 ms instead of racing
 * the import for a gap of a millisecond (and timing out at its 250 ms busy timeout).
 */
const TARGET_HOLD_MS = 10;
/** The least time the lock stays free between two transactions of the import. */
const MIN_GAP_MS = 5;
/** How often the import checkpoints the WAL itself (see pacer()). */
const CHECKPOINT_EVERY_MS = 100;
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

const since = (t0: number) => performance.now() - t0;

/**
 * Runs write transactions one after another with the lock free in between for at least as
 * long as the last one held it (time spent parsing the next rows counts), sizing each
 * batch to hold it about TARGET_HOLD_MS.
 */
function pacer(db: Db) {
  const sizer = chunkSizer();
  let freeAt = 0;
  let checkpointAt = 0;
  return {
    get size() {
      return sizer.size;
    },
    async run<T>(rows: number, fn: () => T): Promise<T> {
      const wait = freeAt - performance.now();
      if (wait > 0.5) await new Promise((r) => setTimeout(r, wait));
      const t0 = performance.now();
      const out = fn();
      const ms = since(t0);
      sizer.took(rows, ms);
      // Checkpointing needs no write lock: done here, in the gap, a few times a second, it
      // keeps the WAL short, so commits of the service seldom cross wal_autocheckpoint and
      // copy the import's pages. (After every transaction it took ~10 % of the import's CPU.)
      if (performance.now() - checkpointAt >= CHECKPOINT_EVERY_MS) {
        db.pragma('wal_checkpoint(PASSIVE)');
        checkpointAt = performance.now();
      }
      freeAt = performance.now() + Math.max(MIN_GAP_MS, ms);
      return out;
    },
  };
}

export function currentGen(db: Db): number {
  return db.prepare('SELECT gen FROM acl_current WHERE id = 1').pluck().get() as number;
}

/** Removes one generation in short transactions (its stations go with it: ON DELETE CASCADE). */
export async function dropGen(db: Db, gen: number): Promise<number> {
  const del = db.prepare(
    'DELETE FROM acl_rows WHERE gen = ? AND token IN (SELECT token FROM acl_rows WHERE gen = ? LIMIT ?)');
  const pace = pacer(db);
  let total = 0;
  for (;;) {
    const n = pace.size;
    const removed = await pace.run(n, () => db.transaction(() => del.run(gen, gen, n).changes).immediate());
    total += removed;
    if (removed < n) return total;
  }
}

/** Rows of generations other than the one in force: what an import that died left. */
async function dropLeftovers(db: Db, current: number): Promise<void> {
  const min = db.prepare('SELECT MIN(gen) FROM acl_rows').pluck();
  const max = db.prepare('SELECT MAX(gen) FROM acl_rows').pluck();
  const lowest = () => min.get() as number | null;
  const highest = () => max.get() as number | null;
  for (let g = lowest(); g !== null && g < current; g = lowest()) await dropGen(db, g);
  for (let g = highest(); g !== null && g > current; g = highest()) await dropGen(db, g);
}

/** One `acl import` at a time per database file: the lock is a file lock, gone with the process. */
function importLock(db: Db, nativeBinding: string | undefined) {
  if (db.memory) return { release() {} };
  const lock = tryLock(`${db.name}.acl-import`, { waitMs: 0, nativeBinding });
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
export async function replaceList(
  db: Db,
  file: string,
  nativeBinding: string | undefined,
  onSwitch: () => void,
): Promise<ReplaceResult> {
  const lock = importLock(db, nativeBinding);
  // Rows of a generation nobody reads need no fsync each; the switch commits with FULL,
  // and its WAL sync makes every frame before it durable too.
  db.pragma('synchronous = NORMAL');
  // Its commits would checkpoint inside the timed transaction: the pacer does it between them.
  db.pragma('wal_autocheckpoint = 0');
  let built: number | null = null;
  try {
    const old = currentGen(db);
    await dropLeftovers(db, old);
    const gen = ((db.prepare('SELECT MAX(gen) FROM acl_rows').pluck().get() as number | null) ?? old) + 1;
    built = gen;
    const imported = await build(db, file, old, gen);

    const removed = db
      .prepare(`SELECT COUNT(*) FROM acl_rows o
        WHERE o.gen = ? AND NOT EXISTS (SELECT 1 FROM acl_rows n WHERE n.gen = ? AND n.token = o.token)`)
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
      db.pragma('wal_autocheckpoint = 1000');
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
  const insert = db.prepare(`INSERT INTO acl_rows
      (gen, token, blocked, expires_at, note, created_at, updated_at, group_name, valid_from, allow_offline, token_type)
    VALUES (@gen, @token, @blocked, @expires_at, @note,
      COALESCE((SELECT created_at FROM acl_rows WHERE gen = @old AND token = @token), @now), @now,
      @group_name, @valid_from, @allow_offline, @token_type)`);
  // A later row for the same token (rare): it replaces the entry and its stations.
  const update = db.prepare(`UPDATE acl_rows SET blocked = @blocked, expires_at = @expires_at, note = @note,
      group_name = @group_name, valid_from = @valid_from, allow_offline = @allow_offline, token_type = @token_type
    WHERE gen = @gen AND token = @token`);
  const clearStations = db.prepare('DELETE FROM acl_station_rows WHERE gen = ? AND token = ?');
  const addStation = db.prepare('INSERT OR IGNORE INTO acl_station_rows (gen, token, station_id) VALUES (?, ?, ?)');
  const now = new Date().toISOString();
  const write = db.transaction((rows: AclRecord[]) => {
    for (const r of rows) {
      const p = {
        gen, old, now, token: r.token, blocked: r.blocked ? 1 : 0, expires_at: r.expires_at, note: r.note,
        group_name: r.group ?? null, valid_from: r.valid_from ?? null, allow_offline: r.allow_offline ? 1 : 0,
        token_type: r.token_type ?? null,
      };
      try {
        insert.run(p);
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') throw err;
        const { old: _o, now: _n, ...set } = p;
        update.run(set);
        clearStations.run(gen, r.token);
      }
      for (const s of r.stations) addStation.run(gen, r.token, s);
    }
  });

  const pace = pacer(db);
  let pending: AclRecord[] = [];
  const flush = async () => {
    const batch = pending;
    pending = [];
    await pace.run(batch.length, () => write.immediate(batch));
  };
  const rows = await readAclCsv(file, (r) => {
    if (r.remove) throw usageError(`CSV line ${r.line}: remove rows belong to a differential update, not --replace`);
    if (r.group && !groups.has(r.group)) throw usageError(`CSV line ${r.line}: ${noSuchGroup(r.group)}`);
    if (unknown.size > 0) {
      const h = hashToken(r.token);
      if (unknown.has(h)) known.push(h);
    }
    pending.push(r);
    return pending.length >= pace.size ? flush() : undefined;
  });
  if (pending.length > 0) await flush();
  return { rows, known };
}
