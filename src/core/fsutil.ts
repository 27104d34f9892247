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
