import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { createPool } from '../../src/dispatch/pool.ts';
import { CHECKPOINT_MIN_CHANGES, createCheckpointer } from '../../src/queue/checkpointer.ts';
import { captureLog, startApp, submit } from '../support/app.ts';
import { startReceiver } from '../support/receiver.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

// The WAL checkpoint runs in a pool thread, not inside a commit on the event loop
// (src/queue/checkpointer.ts, workers/checkpoint.ts). What shows that it ran: the rows
// reach the main database file, which a WAL database without checkpoints never grows.

const TASK = fileURLToPath(new URL('../../workers/task.ts', import.meta.url));

/** A WAL database whose writer never checkpoints: 1,000 rows of 1 KiB land in the WAL only. */
function walOnly(dir: string) {
  const path = join(dir, 'ck.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t (x BLOB)');
  const insert = db.prepare('INSERT INTO t (x) VALUES (zeroblob(1024))');
  db.transaction(() => {
    for (let i = 0; i < 1000; i++) insert.run();
  })();
  return { db, path };
}

describe('WAL checkpoints off the event loop', () => {
  it('a written WAL is copied into the database file by a pool thread, once per interval, and stop waits for it', async (t) => {
    const { db, path } = walOnly(tempDir(t));
    t.after(() => db.close());
    const before = statSync(path).size;
    const pool = createPool({ filename: TASK, threads: 1, concurrency: 1 });
    t.after(() => pool.destroy());
    const ck = createCheckpointer({
      run: () => pool.run({ dbPath: path }, { name: 'checkpoint' }),
      fallback: () => Promise.reject(new Error('the thread should have run it')),
      log: captureLog().log,
      intervalMs: 20,
    });
    ck.committed(0);
    ck.committed(999);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(ck.count, 0, 'fewer rows than CHECKPOINT_MIN_CHANGES (a start, a trickle) stay in the WAL');
    ck.committed(1);
    ck.committed(500);
    await waitFor(() => ck.count === 1, { what: 'a checkpoint' });
    assert.ok(statSync(path).size >= before + 1000 * 1024, `database file ${statSync(path).size} bytes, was ${before}`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(ck.count, 1, 'commits in one interval: one checkpoint; what came after it waits for the threshold');
    ck.committed(CHECKPOINT_MIN_CHANGES);
    await ck.stop();
    ck.committed(CHECKPOINT_MIN_CHANGES);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(ck.count, 1, 'nothing runs after stop');
  });

  it('when no thread can run it, the main thread does, and says so once', async (t) => {
    const captured = captureLog();
    let fallbacks = 0;
    const ck = createCheckpointer({
      run: () => Promise.reject(new Error('no thread')),
      fallback: async () => void fallbacks++,
      log: captured.log,
      intervalMs: 10,
      minChanges: 1,
    });
    t.after(() => ck.stop());
    ck.committed(1);
    await waitFor(() => ck.count === 1);
    ck.committed(1);
    await waitFor(() => ck.count === 2);
    assert.equal(fallbacks, 2);
    assert.equal(captured.lines.filter((l) => /WAL checkpoint could not run in a worker thread/.test(String(l.msg))).length, 1);
  });

  it('the service: its connection never checkpoints, and what it commits reaches the database file', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const { app, dir } = await startApp(t);
    assert.equal(app.db.pragma('wal_autocheckpoint', { simple: true }), 0);
    const file = join(dir, 'cg.db');
    const before = statSync(file).size;
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push((await submit(app, rx.url())).id);
    await waitFor(() => rx.calls.length === 300, { what: 'callbacks' });
    await waitFor(() => statSync(file).size > before, { what: 'the database file to grow (a checkpoint)' });
  });
});
