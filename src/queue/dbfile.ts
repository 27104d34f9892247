import { accessSync, closeSync, constants, existsSync, openSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ChargegateError } from '../core/errors.ts';
import { refuseNewer, schemaVersion } from './migrate.ts';

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
 * Checks an existing database file before it is opened for writing: a file or folder that
 * cannot be written is refused with the reason, a file from a newer chargegate untouched.
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
  refuseNewerFile(path, nativeBinding);
}

/**
 * Refuses an existing file from a newer chargegate without changing it. A WAL file is
 * left to migrate()'s check (opening it changes nothing); a rollback-journal file would be
 * switched to WAL by opening it, so its version is read on a read-only connection first.
 */
export function refuseNewerFile(path: string, nativeBinding?: string): void {
  if (path === ':memory:' || !existsSync(path)) return;
  if (statSync(path).isDirectory()) {
    throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot open database ${path}: it is a folder, not a file (DB_PATH or --db names the database file)`);
  }
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
  refuseNewer(version);
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
 * Watches files that must stay the very files the service opened: `onLost` is told once,
 * with the first one found deleted or replaced (a different inode at the path).
 */
export function watchFiles(files: readonly string[], intervalMs: number, onLost: (file: string) => void): { stop(): void } {
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

/**
 * Watches the -wal and -shm files of an open WAL database (and `also`, e.g. the instance
 * lock file). Deleting them under a live connection is silent: SQLite keeps writing to the
 * unlinked WAL, every other connection (the CLI, sqlite3, a restart) sees an empty one,
 * and a crash loses every commit since the last checkpoint.
 */
export function watchWal(path: string, intervalMs: number, onLost: (file: string) => void, also: readonly string[] = []): { stop(): void } {
  if (path === ':memory:') return { stop() {} };
  return watchFiles([`${path}-wal`, `${path}-shm`, ...also], intervalMs, onLost);
}
