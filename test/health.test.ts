import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createHealth, createWriteWatch } from '../src/observe/health.ts';
import { createCommitter } from '../src/queue/committer.ts';
import { openDb } from '../src/queue/db.ts';
import { migrate } from '../src/queue/migrate.ts';
import { tempDir } from './support/tmp.ts';

const sqliteError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('database health without writing', () => {
  it('the committer tells an empty commit from one that wrote, and reports failures', async (t) => {
    const db = openDb(join(tempDir(t), 'h.db'), { busyTimeoutMs: 100 });
    migrate(db);
    t.after(() => db.close());
    const commits: number[] = [];
    const errors: unknown[] = [];
    const committer = createCommitter(db, { onCommit: (_ops, _ms, changes) => commits.push(changes), onError: (err) => errors.push(err) });
    await committer.run(() => db.prepare('SELECT 1').get());
    await Promise.all([1, 2, 3].map((n) => committer.run(() => db.prepare("INSERT INTO stations (station_id) VALUES (?)").run(`s${n}`))));
    assert.deepEqual(commits, [0, 3]);
    // One op failing fails only itself (its savepoint), not the commit: nothing to report.
    await assert.rejects(committer.run(() => db.prepare("INSERT INTO stations (station_id) VALUES ('s1')").run()), /UNIQUE/);
    assert.equal(errors.length, 0);
    // A commit that fails is reported: a deferred foreign key is checked at COMMIT only.
    await assert.rejects(
      committer.run(() => {
        db.pragma('defer_foreign_keys = ON');
        db.prepare("INSERT INTO acl_stations (token, station_id) VALUES ('nobody', 's1')").run();
      }),
      /FOREIGN KEY/,
    );
    assert.equal(errors.length, 1);
  });

  it('remembers a full disk until a commit that wrote succeeds; a lock or read-only state is left to the probe', () => {
    const w = createWriteWatch();
    w.failed(sqliteError('SQLITE_FULL', 'database or disk is full'));
    assert.equal(w.fault(), 'database or disk is full');
    w.committed(0); // an empty commit succeeds even on a full disk
    assert.equal(w.fault(), 'database or disk is full');
    w.committed(2);
    assert.equal(w.fault(), null);
    w.failed(sqliteError('SQLITE_IOERR_WRITE', 'disk I/O error'));
    assert.equal(w.fault(), 'disk I/O error');
    w.committed(1);
    for (const code of ['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_LOCKED', 'SQLITE_READONLY']) {
      w.failed(sqliteError(code, code));
      assert.equal(w.fault(), null, code);
    }
  });

  it('DOWN with the probe failure, the remembered write failure, or a known fault; UP otherwise; free space reported', async () => {
    let probe: Error | null = null;
    let failing: string | null = null;
    let fault: string | null = null;
    const health = createHealth({
      probeDb: () => {
        if (probe) throw probe;
      },
      writeFault: () => failing,
      fault: () => fault,
      freeBytes: async () => 12345,
      queue: () => ({ depth: 0, max: 10 }),
      threads: () => ({ alive: 1, configured: 1 }),
    });
    const db = async () => (await health.check()).components.database as { status: string; error?: string; free_bytes?: number };
    assert.deepEqual(await db(), { status: 'UP', free_bytes: 12345 });
    probe = new Error('database is locked');
    assert.deepEqual(await db(), { status: 'DOWN', error: 'database is locked', free_bytes: 12345 });
    probe = null;
    failing = 'database or disk is full';
    assert.equal((await health.check()).status, 'DOWN');
    assert.equal((await db()).error, 'database or disk is full');
    failing = null;
    fault = 'x-wal was deleted';
    assert.equal((await db()).error, 'x-wal was deleted');
  });

  it('workers: UP with no thread alive (threads start with the work), DOWN when one could not start', async () => {
    let threads: { alive: number; configured: number; error?: string | null } = { alive: 0, configured: 2, error: null };
    const health = createHealth({ probeDb: () => undefined, queue: () => ({ depth: 0, max: 10 }), threads: () => threads });
    assert.deepEqual((await health.check()).components.workers, { status: 'UP', alive: 0, configured: 2 });
    assert.equal((await health.check()).status, 'UP');
    threads = { alive: 0, configured: 2, error: 'a worker thread cannot start: ENOENT' };
    assert.deepEqual((await health.check()).components.workers, { status: 'DOWN', alive: 0, configured: 2, error: 'a worker thread cannot start: ENOENT' });
    assert.equal((await health.check()).status, 'DOWN');
  });
});

describe('committer after close', () => {
  it('an op that arrives after the database was closed is rejected, not thrown out of the event loop', async (t) => {
    const db = openDb(join(tempDir(t), 'c.db'), { busyTimeoutMs: 100 });
    const errors: unknown[] = [];
    const committer = createCommitter(db, { onError: (err) => errors.push(err) });
    db.close();
    await assert.rejects(committer.run(() => 1), /not open/);
    assert.equal(errors.length, 1);
  });
});
