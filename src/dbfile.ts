import { accessSync, closeSync, constants, existsSync, openSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ChargegateError } from './core/errors.ts';
import { schemaVersion } from './queue/migrate.ts';
import { SCHEMA_VERSION } from './queue/schema.ts';

// Guards around the database file that the service needs and SQLite does not give:
// a start that refuses without writing a byte, and noticing the WAL vanish under it.

/** Why the file or its folder cannot be written, in words, or null when they can. */
function notWritable(path: string): string | null {
  for (const [target, what] of [
    [path, 'the file'],
    [dirname(path), `its folder ${dirname(path)} (SQLite creates ${path}-wal and -shm there)`],
  ] as const) {
    if (!existsSync(target)) continue;
    try {
      accessSync(target, constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EROFS') return `${what} is on a read-only file system`;
      if (code === 'EACCES' || code === 'EPERM') return `${what} is not writable by this user`;
    }
  }
  return null;
}

/**
 * Checks an existing database file before it is opened for writing. Opening switches a
 * rollback-journal file to WAL (bytes 18-19 of its header), which would change a file
 * that is then refused as too new; so a rollback-journal file's schema version is read
 * first on a read-only connection (which needs no -wal/-shm), and a newer one is refused
 * untouched. A file that cannot be written is refused with the reason.
 */
export function preflight(path: string, nativeBinding?: string): void {
  if (path === ':memory:') return;
  if (!existsSync(path)) {
    // A new file: its folder must take it (a missing folder is created later).
    const why = existsSync(dirname(path)) ? notWritable(path) : null;
    if (why) throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot create database ${path}: ${why}`);
    return;
  }
  const why = notWritable(path);
  if (why) throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot open database ${path}: ${why}`);
  const head = Buffer.alloc(100);
  const fd = openSync(path, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  const rollbackJournal = n === 100 && head.toString('latin1', 0, 16) === 'SQLite format 3\0' && head[18] === 1;
  if (!rollbackJournal) return;
  let version: number;
  const db = new Database(path, { readonly: true, fileMustExist: true, ...(nativeBinding ? { nativeBinding } : {}) });
  try {
    version = schemaVersion(db);
  } catch (err) {
    throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot open database ${path}: ${(err as Error).message}`);
  } finally {
    db.close();
  }
  if (version > SCHEMA_VERSION) {
    throw new ChargegateError(
      'CG_ERR_SCHEMA_NEWER',
      `database schema version ${version} is newer than this chargegate supports (${SCHEMA_VERSION}); upgrade chargegate`,
    );
  }
}

function fileId(path: string): string | null {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}`;
  } catch {
    return null;
  }
}

/**
 * Watches the -wal and -shm files of an open WAL database. Deleting them under a live
 * connection is silent: SQLite keeps writing to the unlinked WAL, every other connection
 * (the CLI, sqlite3, a restart) sees an empty one, and a crash loses every commit since
 * the last checkpoint. `onLost` is told once, with the file that went.
 */
export function watchWal(path: string, intervalMs: number, onLost: (file: string) => void): { stop(): void } {
  if (path === ':memory:') return { stop() {} };
  const files = [`${path}-wal`, `${path}-shm`];
  const ids = files.map(fileId);
  const timer = setInterval(() => {
    for (let i = 0; i < files.length; i++) {
      if (ids[i] !== null && fileId(files[i]!) !== ids[i]) {
        clearInterval(timer);
        onLost(files[i]!);
        return;
      }
    }
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
