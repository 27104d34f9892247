import Database from 'better-sqlite3';
import { ChargegateError } from '../core/errors.ts';
import { makeDirs } from '../core/fsutil.ts';
import { dirname } from 'node:path';

export type Db = Database.Database;

export interface OpenOptions {
  /** How long a write waits for another process's lock. Kept short on the service's main
   * thread: better-sqlite3 waits synchronously, so a long wait would freeze the event loop. */
  busyTimeoutMs: number;
  /** Absolute path of the better-sqlite3 addon, when it is not in node_modules (the executable). */
  nativeBinding?: string | undefined;
  /** Create the parent folder when it does not exist (the default ./data on first start). */
  createDir?: boolean;
}

/**
 * Opens the one database file with the durability settings SPEC §3 requires:
 * WAL so readers (workers, the sqlite3 CLI) never block the writer, synchronous=FULL so
 * a commit is fsync'd before the 202 goes out.
 */
export function openDb(path: string, opts: OpenOptions): Db {
  if (opts.createDir && path !== ':memory:') makeDirs(dirname(path));
  let db: Db;
  try {
    db = new Database(path, opts.nativeBinding ? { nativeBinding: opts.nativeBinding } : {});
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs))}`);
    db.pragma('journal_mode = WAL');
  } catch (err) {
    throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot open database ${path}: ${(err as Error).message}`);
  }
  db.pragma('synchronous = FULL');
  // After a checkpoint the WAL is cut back to this size instead of keeping its peak.
  db.pragma('journal_size_limit = 67108864');
  // acl_stations rows go with their token (ON DELETE CASCADE).
  db.pragma('foreign_keys = ON');
  return db;
}
