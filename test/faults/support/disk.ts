import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../support/process.ts';

// Disk and database faults made for real where the machine allows it: a small tmpfs that
// fills up, a mount turned read-only, a second process holding SQLite's write lock.

type TestContext = { after: (fn: () => unknown) => void };

/**
 * A folder on its own tmpfs of `bytes`, unmounted (lazily, so open files do not stop it)
 * when the test ends; null where mounting is not permitted (not root, no CAP_SYS_ADMIN).
 */
export function smallDisk(t: TestContext, bytes: number): string | null {
  // FAULT_NO_MOUNT=1 exercises the fallbacks where mounting is permitted.
  if (process.env.FAULT_NO_MOUNT === '1') return null;
  const dir = mkdtempSync(join(tmpdir(), 'cg-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  t.after(() => {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    } catch {}
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export function remount(dir: string, mode: 'ro' | 'rw'): void {
  execFileSync('mount', ['-o', `remount,${mode}`, dir], { stdio: 'pipe' });
}

/** Writes a filler file until the filesystem is full; returns its path and size. */
export function fillDisk(dir: string): { path: string; bytes: number } {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x66);
  let bytes = 0;
  try {
    for (;;) bytes += writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  // Whatever is left (a partial block) goes too.
  try {
    const fd2 = openSync(path, 'a');
    try {
      for (;;) bytes += writeSync(fd2, Buffer.alloc(512, 0x66));
    } catch {}
    closeSync(fd2);
  } catch {}
  return { path, bytes };
}

export interface LockHolder {
  /** What holds it: the sqlite3 command-line shell, or a Node process (no sqlite3 installed). */
  via: 'sqlite3' | 'node';
  release(): Promise<void>;
}

function hasSqlite3(): boolean {
  // FAULT_LOCK_VIA=node exercises the fallback where sqlite3 is installed.
  if (process.env.FAULT_LOCK_VIA === 'node') return false;
  try {
    execFileSync('sqlite3', ['-version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/**
 * An admin holding the write lock: `BEGIN IMMEDIATE` in the sqlite3 shell (or, where it
 * is not installed, in a separate Node process with better-sqlite3), held until release().
 * Resolves once the lock is taken.
 */
export async function holdWriteLock(t: TestContext, dbPath: string): Promise<LockHolder> {
  const via = hasSqlite3() ? 'sqlite3' : 'node';
  const child: ChildProcess =
    via === 'sqlite3'
      ? spawn('sqlite3', [dbPath], { stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(
          process.execPath,
          [
            '-e',
            `const D=require('better-sqlite3');const db=new D(process.argv[1]);db.pragma('busy_timeout=5000');db.exec('BEGIN IMMEDIATE');` +
              `process.stdout.write('locked\\n');process.stdin.on('data',()=>{db.exec('COMMIT');db.close();process.exit(0)});`,
            dbPath,
          ],
          { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
        );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the lock was not taken within 10 s: ${err}`)), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      if (out.includes('locked')) {
        clearTimeout(timer);
        resolve();
      }
    });
    if (via === 'sqlite3') child.stdin!.write(".timeout 5000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n");
  });
  return {
    via,
    async release() {
      child.stdin!.write(via === 'sqlite3' ? 'COMMIT;\n.quit\n' : 'go\n');
      await exited;
    },
  };
}
