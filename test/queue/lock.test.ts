import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { lockPathOf, tryLock } from '../../src/queue/lock.ts';
import { tempDir } from '../support/tmp.ts';

const LOCK_MODULE = new URL('../../src/queue/lock.ts', import.meta.url).href;

/** A separate process holding the lock of dbPath until killed. */
async function holder(t: { after: (fn: () => unknown) => void }, dbPath: string) {
  const src = `const { tryLock } = await import(${JSON.stringify(LOCK_MODULE)});
    // Kept referenced: a collected connection would close and let the lock go.
    globalThis.held = tryLock(process.argv[1], { waitMs: 0 });
    if (!globalThis.held) process.exit(3);
    console.log('locked'); setInterval(() => {}, 1e6);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', src, dbPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  t.after(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (l) => (l === 'locked' ? resolve() : reject(new Error(l))));
    child.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
  return child;
}

describe('instance lock', () => {
  it('one holder at a time; given back on release; the file stays empty, with no journal beside it', (t) => {
    const dbPath = join(tempDir(t), 'l.db');
    const a = tryLock(dbPath, { waitMs: 0 });
    assert.ok(a);
    assert.equal(a.path, lockPathOf(dbPath));
    assert.equal(tryLock(dbPath, { waitMs: 50 }), null, 'a second holder is refused (in the same process too)');
    a.release();
    a.release(); // idempotent
    const b = tryLock(dbPath, { waitMs: 0 });
    assert.ok(b, 'free again after release');
    assert.equal(statSync(lockPathOf(dbPath)).size, 0, 'nothing is written to the lock file');
    assert.ok(!existsSync(`${lockPathOf(dbPath)}-journal`));
    b.release();
  });

  it('is released by the kernel when its holder is SIGKILLed, before the dead process is even reaped', { timeout: 30_000 }, async (t) => {
    const dbPath = join(tempDir(t), 'l.db');
    const child = await holder(t, dbPath);
    assert.equal(tryLock(dbPath, { waitMs: 0 }), null, 'held by the other process');
    child.kill('SIGKILL');
    // Synchronous from here on: this process's event loop cannot reap the child meanwhile.
    const deadline = Date.now() + 10_000;
    let lock = null;
    while (!lock && Date.now() < deadline) lock = tryLock(dbPath, { waitMs: 10 });
    assert.ok(lock, 'the lock is free once the holder is dead');
    assert.doesNotThrow(() => process.kill(child.pid!, 0), 'the dead holder is not reaped yet (its pid is still taken)');
    lock.release();
  });

  it('an unusable lock file is an error that names it, not "in use"', (t) => {
    const dir = tempDir(t);
    assert.throws(() => tryLock(join(dir, 'missing', 'l.db'), { waitMs: 0 }), /cannot open the instance lock file .*missing\/l\.db\.lock/);
    const dbPath = join(dir, 'l.db');
    writeFileSync(lockPathOf(dbPath), Buffer.alloc(8192, 0x5a));
    assert.throws(() => tryLock(dbPath, { waitMs: 0 }), /cannot lock .*l\.db\.lock: file is not a database .*remove it while no chargegate runs/);
  });
});
