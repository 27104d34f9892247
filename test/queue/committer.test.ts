import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createCommitter } from '../../src/queue/committer.ts';
import { openDb } from '../../src/queue/db.ts';
import { tempDir } from '../support/tmp.ts';

// The group committer on a real SQLite file: one transaction per event-loop turn, each op
// isolated in its own savepoint, the group failing as one only when the transaction does.

function setup(t: { after: (fn: () => void) => void }) {
  const path = join(tempDir(t), 'c.db');
  const db = openDb(path, { busyTimeoutMs: 1000 });
  t.after(() => db.close());
  db.exec(`CREATE TABLE item (id TEXT PRIMARY KEY, note TEXT);
    CREATE TABLE parent (id TEXT PRIMARY KEY);
    CREATE TABLE child (id TEXT PRIMARY KEY, parent_id TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);`);
  const insert = db.prepare('INSERT INTO item (id, note) VALUES (?, ?)');
  // What another process (the sqlite3 CLI, a worker thread) sees on disk.
  const reader = new Database(path, { readonly: true });
  t.after(() => reader.close());
  const ids = () => reader.prepare('SELECT id FROM item ORDER BY id').pluck().all();
  let commits = 0;
  const committer = createCommitter(db, { onCommit: () => commits++ });
  return { db, insert, ids, committer, commits: () => commits };
}

describe('group commit isolation', () => {
  it('an op that throws is undone alone; the other ops of its turn commit and resolve', async (t) => {
    const { db, insert, ids, committer, commits } = setup(t);
    const results = await Promise.allSettled([
      committer.run(() => insert.run('a', 'first').changes),
      committer.run(() => {
        insert.run('b', 'partial write of a failing op');
        insert.run('a', 'duplicate key'); // SQLITE_CONSTRAINT_PRIMARYKEY
      }),
      committer.run(() => {
        insert.run('c', 'written, then a bug');
        throw new Error('bug after a write');
      }),
      committer.run(() => insert.run('d', 'last') && 'value of d'),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    assert.equal((results[0] as PromiseFulfilledResult<number>).value, 1);
    assert.equal((results[3] as PromiseFulfilledResult<string>).value, 'value of d');
    assert.equal(((results[1] as PromiseRejectedResult).reason as { code: string }).code, 'SQLITE_CONSTRAINT_PRIMARYKEY');
    assert.match(String((results[2] as PromiseRejectedResult).reason), /bug after a write/);
    assert.deepEqual(ids(), ['a', 'd'], 'the failing ops left nothing behind');
    assert.equal(commits(), 1, 'still one transaction for the turn');
    assert.equal(db.inTransaction, false);
  });

  it('a failing COMMIT rejects every op of the group and keeps none of its writes', async (t) => {
    const { db, insert, ids, committer } = setup(t);
    const results = await Promise.allSettled([
      committer.run(() => insert.run('a', 'good')),
      // A deferred foreign key is checked at COMMIT only: the op succeeds, the commit fails.
      committer.run(() => db.prepare("INSERT INTO child (id, parent_id) VALUES ('k', 'nobody')").run()),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    for (const r of results) assert.equal(((r as PromiseRejectedResult).reason as { code: string }).code, 'SQLITE_CONSTRAINT_FOREIGNKEY');
    assert.deepEqual(ids(), []);
    assert.equal(db.inTransaction, false);
    // The next group is not affected.
    await committer.run(() => insert.run('b', 'next turn'));
    assert.deepEqual(ids(), ['b']);
  });

  it('when SQLite rolled the whole transaction back, the group fails and no later op runs outside it', async (t) => {
    const { db, insert, ids, committer } = setup(t);
    let laterRan = false;
    const results = await Promise.allSettled([
      committer.run(() => insert.run('a', 'rolled back with the transaction')),
      committer.run(() => {
        // What SQLITE_FULL or SQLITE_IOERR may do: the transaction is gone, then the error.
        db.prepare('ROLLBACK').run();
        throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      }),
      committer.run(() => {
        laterRan = true;
        return insert.run('c', 'would have been autocommitted');
      }),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
    for (const r of results) assert.equal(((r as PromiseRejectedResult).reason as { code: string }).code, 'SQLITE_FULL');
    assert.equal(laterRan, false);
    assert.deepEqual(ids(), []);
    assert.equal(db.inTransaction, false);
  });
});

describe('group commit with the WAL fsync off the event loop (walPath)', () => {
  function setupWal(t: { after: (fn: () => void) => void }, walPath?: string) {
    const path = join(tempDir(t), 'w.db');
    const db = openDb(path, { busyTimeoutMs: 1000 });
    t.after(() => db.close());
    db.exec('CREATE TABLE item (id TEXT PRIMARY KEY)');
    const insert = db.prepare('INSERT INTO item (id) VALUES (?)');
    const errors: unknown[] = [];
    const committer = createCommitter(db, { walPath: walPath ?? `${path}-wal`, onError: (err) => errors.push(err) });
    return { db, path, insert, committer, errors };
  }

  it('commits with synchronous=NORMAL and settles every op, in order, each with its own outcome', async (t) => {
    const { db, path, insert, committer } = setupWal(t);
    assert.equal(db.pragma('synchronous', { simple: true }), 1, 'NORMAL: the committer fsyncs the WAL itself');
    const order: string[] = [];
    const first = [committer.run(() => insert.run('a').changes), committer.run(() => insert.run('a'))];
    first.forEach((p, i) => p.then(() => order.push(`1.${i}`), () => order.push(`1.${i}!`)));
    await new Promise((r) => setImmediate(r)); // the first group is committed, its fsync under way
    assert.equal(committer.unsettled, 1, 'committed, visible in the table, not settled');
    const second = committer.run(() => insert.run('b').changes).then((v) => (order.push('2'), v));
    const results = await Promise.allSettled([...first, second]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.deepEqual(order, ['1.0', '1.1!', '2'], 'groups settle in commit order');
    assert.equal(committer.unsettled, 0);
    const reader = new Database(path, { readonly: true });
    t.after(() => reader.close());
    assert.deepEqual(reader.prepare('SELECT id FROM item ORDER BY id').pluck().all(), ['a', 'b']);
  });

  it('an op is not settled as done before the WAL is synced: a WAL that cannot be synced fails its group', async (t) => {
    const { insert, committer, errors } = setupWal(t, join(tempDir(t), 'no-such-folder', 'x-wal'));
    const results = await Promise.allSettled([committer.run(() => insert.run('a')), committer.run(() => insert.run('b'))]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    for (const r of results) assert.equal(((r as PromiseRejectedResult).reason as { code: string }).code, 'ENOENT');
    assert.equal(errors.length, 1);
  });

  it('a group that wrote nothing needs no fsync of its own: settled at once when nothing before it waits for one', async (t) => {
    // A WAL that cannot be synced: any fsync this group started would fail it.
    const { db, insert, committer } = setupWal(t, join(tempDir(t), 'no-such-folder', 'x-wal'));
    const count = db.prepare('SELECT COUNT(*) FROM item').pluck();
    assert.equal(await committer.run(() => count.get()), 0, 'a read-only group is not failed by the WAL it did not write');
    await assert.rejects(committer.run(() => insert.run('a')), { code: 'ENOENT' }, 'a group that wrote still needs its fsync');
  });

  it('a group that wrote nothing settles only with the groups before it, on their fsync, without another', async (t) => {
    const { db, insert, committer } = setupWal(t);
    const count = db.prepare('SELECT COUNT(*) FROM item').pluck();
    const wrote = committer.run(() => insert.run('a').changes);
    await new Promise((r) => setImmediate(r)); // committed, its fsync under way
    assert.equal(committer.unsettled, 1);
    let readSettled = false;
    // It read the unsettled row: its answer must not be out before that row is on disk.
    const read = committer.run(() => count.get()).then((n) => ((readSettled = true), n));
    await new Promise((r) => setImmediate(r));
    assert.equal(committer.unsettled, 2, 'the read-only group waits with the group before it');
    assert.equal(readSettled, false);
    assert.equal(await wrote, 1);
    // No event-loop turn passes from here: a second fsync could not have finished.
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(readSettled, true, 'settled by the same fsync as the group before it');
    assert.equal(await read, 1);
    assert.equal(committer.unsettled, 0);
  });

  it('flush() at shutdown commits and syncs what is pending, settles it and lets go of the WAL', async (t) => {
    const { path, insert, committer } = setupWal(t);
    // Descriptors of this process open on the WAL: SQLite's own, and the committer's.
    const walFds = () => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === `${path}-wal`;
      } catch {
        return false;
      }
    }).length;
    await committer.run(() => insert.run('a'));
    assert.equal(walFds(), 2);
    const p = committer.run(() => insert.run('b').changes);
    committer.flush();
    assert.equal(committer.pending, 0);
    assert.equal(await p, 1);
    // An fsync still under way closes it when it is done.
    for (const end = Date.now() + 5000; walFds() > 1 && Date.now() < end; ) await new Promise((r) => setImmediate(r));
    assert.equal(walFds(), 1, 'only SQLite keeps the WAL open');
  });
});
