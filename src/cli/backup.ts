import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ChargegateError } from '../core/errors.ts';
import { redactUrl } from '../core/redact.ts';

// `backup` writes over its target page by page: onto the live database (or a link to it)
// that would corrupt the very file it copies, and onto an older backup it would lose it.

/** The file a path names once links are followed; for a path that does not exist yet, its folder's. */
function realTarget(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    try {
      return join(realpathSync(dirname(abs)), basename(abs));
    } catch {
      return abs;
    }
  }
}

/** Refuses a target that is the source (or one of its -wal/-shm/.lock files), and an existing one unless forced. */
export function checkBackupTarget(source: string, target: string, force: boolean): void {
  const src = realTarget(source);
  const dst = realTarget(target);
  if (dst === src || [`${src}-wal`, `${src}-shm`, `${src}-journal`, `${src}.lock`].includes(dst)) {
    throw new ChargegateError('CG_ERR_USAGE', `backup target ${target} is the database being backed up (${source}); choose another file`);
  }
  if (existsSync(target) && !force) {
    throw new ChargegateError('CG_ERR_USAGE', `backup target ${target} exists; --force replaces it`);
  }
}

/**
 * `backup` on PostgreSQL: the server's own tool makes a consistent copy while instances
 * run (one snapshot, no page copying by a client), and restores it; chargegate would only
 * wrap it less well. A usage error that names the command to run instead (no password).
 */
export function refusePgBackup(url: string, target: string): never {
  const shown = redactUrl(url);
  throw new ChargegateError(
    'CG_ERR_USAGE',
    `backup copies the SQLite file; this command names PostgreSQL (--database-url / DATABASE_URL): ` +
      `use pg_dump, e.g. pg_dump --format=custom --file='${target}' '${shown}' (restore: pg_restore), or give --db for a SQLite file`,
  );
}
