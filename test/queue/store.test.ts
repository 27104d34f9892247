import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createCommitter } from '../../src/queue/committer.ts';
import { openDb } from '../../src/queue/db.ts';
import { createDepth } from '../../src/queue/depth.ts';
import { migrate, schemaVersion } from '../../src/queue/migrate.ts';
import { SCHEMA_VERSION } from '../../src/queue/schema.ts';
import { createStore } from '../../src/queue/store.ts';
import { tempDir } from '../support/tmp.ts';

function setup(t: { after: (fn: () => void) => void }) {
  const dir = tempDir(t);
  const path = join(dir, 'q.db');
  const db = openDb(path, { busyTimeoutMs: 1000 });
  migrate(db);
  t.after(() => db.close());
  return { db, path, store: createStore(db), committer: createCommitter(db) };
}

function row(created_at: number) {
  return {
    id: randomUUID(),
    station_id: '123e4567-e89b-12d3-a456-426614174000',
    driver_token: 'ABCD-efgh1234567890_~valid.token',
    token_hash: 'h',
    token_mask: 'ABCD…oken',
    callback_url: 'http://127.0.0.1:1/cb',
    created_at,
  };
}

describe('database file', () => {
  it('is WAL with synchronous=FULL and carries the schema version', (t) => {
    const { db } = setup(t);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('synchronous', { simple: true }), 2); // FULL
    assert.equal(schemaVersion(db), SCHEMA_VERSION);
  });

  it('refuses a file from a newer schema and leaves it untouched', (t) => {
    const { db, path } = setup(t);
    db.prepare("INSERT INTO schema_migrations VALUES (999, 'future', 'x')").run();
    db.close();
    const other = openDb(path, { busyTimeoutMs: 100 });
    t.after(() => other.close());
    assert.throws(() => migrate(other), /schema version 999 is newer/);
    assert.equal(schemaVersion(other), 999);
  });

  it('applies migrations once when run again', (t) => {
    const { db } = setup(t);
    assert.deepEqual(migrate(db), { from: SCHEMA_VERSION, to: SCHEMA_VERSION });
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number }).n, SCHEMA_VERSION);
  });
});

describe('group commit', () => {
  it('commits every insert of one event-loop turn in one transaction', async (t) => {
    const { db, path, store } = setup(t);
    let commits = 0;
    let opsInLast = 0;
    const committer = createCommitter(db, {
      onCommit: (ops) => {
        commits++;
        opsInLast = ops;
      },
    });
    const rows = Array.from({ length: 200 }, (_, i) => row(1000 + i));
    await Promise.all(rows.map((r) => committer.run(() => store.insert(r))));
    assert.equal(commits, 1);
    assert.equal(opsInLast, 200);
    // A second connection (another process would see the same) reads all of them.
    const reader = new Database(path, { readonly: true });
    t.after(() => reader.close());
    assert.equal((reader.prepare('SELECT COUNT(*) AS n FROM charging_requests').get() as { n: number }).n, 200);
  });
});

describe('claims and leases', () => {
  it('claims due rows oldest-due first, up to the limit, and not again while leased', (t) => {
    const { store } = setup(t);
    const rows = [row(30), row(10), row(20)];
    for (const r of rows) store.insert(r);
    const first = store.claim(100, 2, 1000);
    assert.deepEqual(first.map((r) => r.id), [rows[1]!.id, rows[2]!.id]);
    assert.ok(first.every((r) => r.state === 'authorizing' && r.claim_count === 1));
    const second = store.claim(100, 10, 1000);
    assert.deepEqual(second.map((r) => r.id), [rows[0]!.id]);
    assert.equal(store.claim(500, 10, 1000).length, 0, 'leased rows are not claimable');
  });

  it('claims a row again once its lease expired (keyed on the claim time, not created_at)', (t) => {
    const { store } = setup(t);
    const r = row(0);
    store.insert(r);
    store.claim(1_000_000, 1, 5000);
    assert.equal(store.claim(1_004_999, 1, 5000).length, 0);
    const again = store.claim(1_005_000, 1, 5000);
    assert.equal(again.length, 1);
    assert.equal(again[0]!.claim_count, 2);
    assert.equal(again[0]!.decision_status, null, 'undecided rows are decided again');
  });

  it('a decided row is re-claimed for delivery with its recorded decision', (t) => {
    const { store } = setup(t);
    const r = row(0);
    store.insert(r);
    store.claim(10, 1, 100);
    assert.equal(store.recordDecisions([{ id: r.id, status: 'not_allowed', reason: 'blocked', source: 'local_list', latency_ms: 3 }], 20), 1);
    const again = store.claim(120, 1, 100);
    assert.equal(again[0]!.state, 'delivering');
    assert.equal(again[0]!.decision_status, 'not_allowed');
  });

  it('records attempts: retry waits until due, delivered drops the token, failed keeps it', (t) => {
    const { db, store } = setup(t);
    const [a, b] = [row(0), row(0)];
    store.insert(a);
    store.insert(b);
    store.claim(10, 2, 100);
    store.recordDecisions(
      [a, b].map((x) => ({ id: x.id, status: 'allowed' as const, reason: 'acl_match', source: 'local_list' as const, latency_ms: 1 })),
      20,
    );
    const base = { started_at: 30, duration_ms: 5, error: null, failure: null };
    store.recordAttempts(
      [
        { ...base, id: a.id, attempt: 1, http_status: 503, outcome: 'retry', next_due_at: 5000 },
        { ...base, id: b.id, attempt: 1, http_status: 410, outcome: 'failed', next_due_at: null, failure: 'rejected: HTTP 410' },
      ],
      40,
    );
    assert.equal(store.claim(4999, 10, 100).length, 0, 'retry not due yet');
    assert.deepEqual(store.claim(5000, 10, 100).map((r) => r.id), [a.id]);
    store.recordAttempts([{ ...base, id: a.id, attempt: 2, http_status: 204, outcome: 'delivered', next_due_at: null }], 5100);
    const get = db.prepare('SELECT state, attempts, driver_token, finished_at, last_error FROM charging_requests WHERE id = ?');
    assert.deepEqual(get.get(a.id), { state: 'delivered', attempts: 2, driver_token: null, finished_at: 5100, last_error: null });
    assert.deepEqual(get.get(b.id), { state: 'failed', attempts: 1, driver_token: a.driver_token, finished_at: 40, last_error: 'rejected: HTTP 410' });
    const attempts = db.prepare('SELECT request_id, attempt, http_status, outcome FROM callback_attempts ORDER BY id').all();
    assert.equal(attempts.length, 3);
  });

  it('release hands claimed rows back at once, undecided ones to queued', (t) => {
    const { db, store } = setup(t);
    const r = row(0);
    store.insert(r);
    store.claim(10, 1, 1_000_000);
    assert.equal(store.release([r.id], 50), 1);
    assert.deepEqual(db.prepare('SELECT state, due_at, locked_at FROM charging_requests').get(), { state: 'queued', due_at: 50, locked_at: null });
    assert.equal(store.claim(50, 1, 10).length, 1);
  });
});

describe('queue bound', () => {
  it('reserves up to the bound, frees room as requests finish, and resyncs from the table', (t) => {
    const { store } = setup(t);
    const depth = createDepth(store, 2);
    assert.equal(depth.tryReserve(), true);
    assert.equal(depth.tryReserve(), true);
    assert.equal(depth.tryReserve(), false, 'third reservation is refused');
    depth.unreserve();
    assert.equal(depth.tryReserve(), true);
    // Two rows really committed, one finished by some other path: resync counts the table.
    store.insert(row(1));
    store.insert(row(2));
    depth.committed();
    depth.committed();
    depth.finished(2);
    assert.equal(depth.value, 0);
    depth.resync();
    assert.equal(depth.value, 2);
    assert.equal(depth.tryReserve(), false);
  });
});
