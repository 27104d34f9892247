import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openDb, type Db } from '../../src/queue/db.ts';
import { openServing, resign, takeOver } from '../../src/queue/instance.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { createStore } from '../../src/queue/store.ts';
import { tempDir } from '../support/tmp.ts';

type T = { after: (fn: () => void) => void };

function setup(t: T) {
  const path = join(tempDir(t), 'i.db');
  const db = openDb(path, { busyTimeoutMs: 1000 });
  migrate(db);
  t.after(() => db.close());
  return { db, path };
}

function serving(t: T, path: string, lockWaitMs = 0) {
  const s = openServing(path, { busyTimeoutMs: 1000, now: Date.now(), lockWaitMs });
  t.after(() => {
    s.db.close();
    s.lock.release();
  });
  return s;
}

function insertClaimed(db: Db, now: number): string {
  const store = createStore(db);
  const id = randomUUID();
  store.insert({ id, station_id: 's', driver_token: 'ABCD-efgh1234567890_~valid.token', token_hash: 'h', token_mask: 'm', callback_url: 'http://x/', created_at: now });
  store.claimUndecided(now, 10, 600_000);
  return id;
}

/** The row a serving instance leaves: here one that looks as alive as can be. */
function recordOwner(db: Db, owner: { pid: number; host: string; at: number }) {
  db.prepare('INSERT OR REPLACE INTO service_instance (id, pid, host, started_at, heartbeat_at) VALUES (1, ?, ?, ?, ?)').run(owner.pid, owner.host, owner.at, owner.at);
}

describe('serving instance', () => {
  it('takes over at once from a predecessor that left its row and leases behind, and hands the leases back', (t) => {
    const { db } = setup(t);
    const now = Date.now();
    insertClaimed(db, now); // claimed by the process that is now dead
    recordOwner(db, { pid: 1, host: 'gw', at: now });
    const store = createStore(db);
    assert.equal(store.claimUndecided(now + 1, 10, 1000).length, 0, 'leased');
    assert.deepEqual(takeOver(db, now + 1000, { pid: process.pid, host: 'gw' }), { previous: 'dead', released: 1 });
    assert.equal(store.claimUndecided(now + 1000, 10, 1000).length, 1, 'claimable immediately');
  });

  it('a clean stop resigns', (t) => {
    const { db } = setup(t);
    takeOver(db, Date.now(), { pid: process.pid, host: 'gw' });
    resign(db, process.pid);
    assert.equal(takeOver(db, Date.now(), { pid: process.ppid, host: 'gw' }).previous, 'none');
  });

  it('refuses while another holds the lock, naming it from its row, which stays as it was', (t) => {
    const { path } = setup(t);
    const first = serving(t, path);
    assert.equal(first.takeover.previous, 'none');
    const rowBefore = first.db.prepare('SELECT * FROM service_instance').get();
    assert.throws(() => serving(t, path), new RegExp(`in use by another chargegate \\(pid ${process.pid} on ${hostname()}, since \\d{4}-`));
    assert.deepEqual(first.db.prepare('SELECT * FROM service_instance').get(), rowBefore, 'the refused start left the row alone');
  });

  it('starts whatever the row says while no one holds the lock: a live pid, the same or another host, a fresh heartbeat', (t) => {
    // Before the lock: a restart right after kill -9 (the pid not reaped yet, or reused) and a
    // container restart (new hostname, same volume) were refused for up to 15 s.
    for (const host of [hostname(), 'container-before-restart']) {
      const { db, path } = setup(t);
      const now = Date.now();
      const id = insertClaimed(db, now);
      recordOwner(db, { pid: process.pid, host, at: now });
      const s = serving(t, path);
      assert.deepEqual(s.takeover, { previous: 'dead', released: 1 }, host);
      assert.equal(s.db.prepare('SELECT locked_at FROM charging_requests WHERE id = ?').pluck().get(id), null, `${host}: lease handed back`);
    }
  });
});
