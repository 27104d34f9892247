import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openDb } from '../../src/queue/db.ts';
import { HEARTBEAT_MS, resign, takeOver } from '../../src/queue/instance.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { createStore } from '../../src/queue/store.ts';
import { tempDir } from '../support/tmp.ts';

function setup(t: { after: (fn: () => void) => void }) {
  const db = openDb(join(tempDir(t), 'i.db'), { busyTimeoutMs: 1000 });
  migrate(db);
  t.after(() => db.close());
  return db;
}

/** A pid that surely belongs to no running process: one that just exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

describe('serving instance', () => {
  it('refuses a second live instance on the same file', (t) => {
    const db = setup(t);
    const now = Date.now();
    assert.deepEqual(takeOver(db, now, { pid: process.ppid, host: 'gw' }), { previous: 'none', released: 0 });
    assert.throws(() => takeOver(db, now + 1000, { pid: process.pid, host: 'gw' }), /in use by another chargegate \(pid \d+ on gw/);
    // A silent owner (no heartbeat for three beats) no longer blocks, even if its pid lives.
    assert.equal(takeOver(db, now + 3 * HEARTBEAT_MS + 1, { pid: process.pid, host: 'gw' }).previous, 'dead');
  });

  it('takes over from a dead instance at once and hands its leases back', (t) => {
    const db = setup(t);
    const store = createStore(db);
    const now = Date.now();
    const id = randomUUID();
    store.insert({ id, station_id: 's', driver_token: 'ABCD-efgh1234567890_~valid.token', token_hash: 'h', token_mask: 'm', callback_url: 'http://x/', created_at: now });
    takeOver(db, now, { pid: deadPid(), host: 'gw' });
    store.claimUndecided(now, 10, 600_000); // claimed by the process that is now dead
    assert.equal(store.claimUndecided(now + 1, 10, 1000).length, 0);
    assert.deepEqual(takeOver(db, now + 1000, { pid: process.pid, host: 'gw' }), { previous: 'dead', released: 1 });
    assert.equal(store.claimUndecided(now + 1000, 10, 1000).length, 1, 'claimable immediately');
  });

  it('a clean stop resigns', (t) => {
    const db = setup(t);
    takeOver(db, Date.now(), { pid: process.pid, host: 'gw' });
    resign(db, process.pid);
    assert.equal(takeOver(db, Date.now(), { pid: process.ppid, host: 'gw' }).previous, 'none');
  });
});
