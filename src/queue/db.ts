import Database from 'better-sqlite3';
import { ChargegateError } from '../core/errors.ts';
import { fsReason, makeDirs } from '../core/fsutil.ts';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
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
  if (opts.createDir && path !== ':memory:') {
    try {
      makeDirs(dirname(path));
      if (!statSync(dirname(path)).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    } catch (err) {
      throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot create the folder ${dirname(path)} for the database ${path}: ${fsReason(err)}`);
    }
  }
  let db: Db | undefined;
  try {
    db = new Database(path, opts.nativeBinding ? { nativeBinding: opts.nativeBinding } : {});
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs))}`);
    db.pragma('journal_mode = WAL');
  } catch (err) {
    db?.close();
    throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot open database ${path}: ${(err as Error).message}`);
  }
  db.pragma('synchronous = FULL');
  // After a checkpoint the WAL is cut back to this size instead of keeping its peak.
  db.pragma('journal_size_limit = 67108864');
  // acl_stations rows go with their token (ON DELETE CASCADE).
  db.pragma('foreign_keys = ON');
  return db;
}

/** True when this process may write the file and its folder (where SQLite keeps -wal and -shm). */
function canWrite(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    accessSync(dirname(path), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Opens an existing file for a command that only reads. Where the file and its folder can
 * be written, a normal connection with query_only: the last connection to close then
 * removes the -wal and -shm files it needed, as a read-only one cannot. Elsewhere (a
 * read-only mount, a copy owned by someone else) a read-only connection, which needs no
 * write access.
 */
export function openReadOnly(path: string, opts: Pick<OpenOptions, 'busyTimeoutMs' | 'nativeBinding'>): Db {
  const binding = opts.nativeBinding ? { nativeBinding: opts.nativeBinding } : {};
  const writable = canWrite(path);
  try {
    const db = new Database(path, { readonly: !writable, fileMustExist: true, ...binding });
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs))}`);
    if (writable) db.pragma('query_only = ON');
    try {
      db.pragma('schema_version'); // SQLite opens the file lazily: fail here, not in the command
    } catch (err) {
      db.close();
      // A WAL file needs its -shm index, which a read-only mount cannot take. Without a -wal
      // file every commit is in the main file, so a copy in memory (marked as a rollback
      // journal file) shows the same data.
      if (writable || (err as { code?: string }).code !== 'SQLITE_CANTOPEN' || existsSync(`${path}-wal`)) throw err;
      const image = readFileSync(path);
      if (image.length >= 20) image[18] = image[19] = 1;
      return new Database(image, { readonly: true, ...binding });
    }
    return db;
  } catch (err) {
    throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot open database ${path}: ${(err as Error).message}`);
  }
}
