import Database from 'better-sqlite3';
import { ChargegateError } from '../core/errors.ts';

// The single-instance lock: an exclusive SQLite lock, which is an fcntl lock, on a sidecar
// file `<db>.lock`, held by one open connection for the life of the process. The kernel
// drops it the moment the process ends, however it ends (kill -9, OOM kill, power cut), so
// a restart never waits on, or mistakes a zombie or a new container for, a live owner, and
// no timer has to write to the disk to prove the owner is alive.
//
// Nothing is ever written to the file: the lock is an exclusive transaction left open, so
// the file stays empty (a power cut cannot damage it) and no -journal appears beside it.
// The file stays after a stop; deleting it while nothing holds it is harmless.
//
// POSIX locks belong to the process, and closing ANY descriptor of the file drops them
// all: nothing in the process may open this file except through SQLite (which tracks its
// own descriptors). Checking it with stat() is fine.

/** The sidecar file that carries the lock, next to the database file. */
export function lockPathOf(dbPath: string): string {
  return `${dbPath}.lock`;
}

export interface InstanceLock {
  /** The lock file (for the watcher that notices it being deleted or replaced). */
  readonly path: string;
  /** Gives the lock up (closing the connection); idempotent. */
  release(): void;
}

export interface LockOptions {
  /** How long to wait for a holder to let go (SQLite's busy timeout; blocks the thread). */
  waitMs: number;
  /** Absolute path of the better-sqlite3 addon, when not in node_modules (the executable). */
  nativeBinding?: string | undefined;
}

/**
 * Takes the lock of this database file, waiting up to waitMs for another process to let go.
 * Returns null when someone else still holds it; throws when the file cannot be used at all.
 */
export function tryLock(dbPath: string, opts: LockOptions): InstanceLock | null {
  if (dbPath === ':memory:') return { path: dbPath, release() {} };
  const path = lockPathOf(dbPath);
  let conn: Database.Database;
  try {
    conn = new Database(path, opts.nativeBinding ? { nativeBinding: opts.nativeBinding } : {});
  } catch (err) {
    throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot open the instance lock file ${path}: ${(err as Error).message}`);
  }
  try {
    conn.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.waitMs))}`);
    // The rollback journal would be a file of its own; nothing is written, so memory will do.
    conn.pragma('journal_mode = MEMORY');
    conn.pragma('locking_mode = EXCLUSIVE');
    conn.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    conn.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return null;
    throw new ChargegateError(
      'CG_ERR_DB_UNAVAILABLE',
      `cannot lock ${path}: ${(err as Error).message} (chargegate's single-instance lock file; remove it while no chargegate runs)`,
    );
  }
  return {
    path,
    release() {
      if (conn.open) conn.close();
    },
  };
}
