import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ChargegateError } from '../core/errors.ts';

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
