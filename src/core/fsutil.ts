import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * mkdir -p that fails instead of spinning: Node's recursive mkdirSync loops forever when a
 * parent exists but refuses children with ENOENT (seen under /proc), which would hang a
 * start instead of reporting an unusable path.
 */
export function makeDirs(dir: string, mode = 0o777): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) makeDirs(parent, mode);
  try {
    mkdirSync(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** An fs error in words, without the errno prefix and syscall dump. */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied for this user';
  if (code === 'EROFS') return 'read-only file system';
  if (code === 'ENOTDIR') return 'a part of the path is a file, not a folder';
  if (code === 'EISDIR') return 'it is a folder, not a file';
  if (code === 'ENOENT') return 'no such file or folder';
  if (code === 'ENOSPC') return 'no space left on the device';
  return (err as Error).message;
}
