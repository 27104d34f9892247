import { existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { lockPathOf } from '../queue/lock.ts';

// What a start creates for a database that did not exist, so that a start that fails can
// take it away again: the file, its -wal/-shm, the instance lock and the folders made for
// them (with the executable's unpack cache in them, and nothing else).

export function newFiles(dbPath: string): { remove(): void } {
  if (dbPath === ':memory:' || existsSync(dbPath)) return { remove() {} };
  const file = resolve(dbPath);
  // The highest folder that does not exist yet: everything below it is ours.
  let topNew: string | null = null;
  for (let d = dirname(file); !existsSync(d); d = dirname(d)) {
    topNew = d;
    if (dirname(d) === d) break;
  }
  return {
    remove() {
      for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`, lockPathOf(file)]) {
        try {
          rmSync(f, { force: true });
        } catch {} // not ours to report: the start's own error says what went wrong
      }
      if (topNew === null) return;
      // Only folders holding nothing but what we made (the cache), in case a user put something there meanwhile.
      const onlyOurs = (dir: string): boolean =>
        readdirSync(dir, { withFileTypes: true }).every((e) => (e.isDirectory() && (e.name === '.chargegate-cache' || onlyOurs(resolve(dir, e.name)))));
      try {
        if (onlyOurs(topNew)) rmSync(topNew, { recursive: true, force: true });
      } catch {}
    },
  };
}
