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
import { createStore, type Claim, type ClaimedRow, type Store } from '../../src/queue/store.ts';
import { tempDir } from '../support/tmp.ts';

function setup(t: { after: (fn: () => void) => void }) {
  const dir = tempDir(t);
  const path = join(dir, 'q.db');
  const db = openDb(path, { busyTimeoutMs: 1000 });
  migrate(db);
  t.after(() => db.close());
  return { db, path, store: createStore(db), committer: createCommitter(db) };
}

/** A take() hook giving each origin `room(origin)` slots. */
function rooms(room: (origin: string) => number): (origin: string) => boolean {
  const taken = new Map<string, number>();
  return (o) => {
    const n = taken.get(o) ?? 0;
    if (n >= room(o)) return false;
    taken.set(o, n + 1);
    return true;
  };
}

/** The counts the bound reads, as the queue gives them. */
function counts(store: Store) {
  return { countOpen: async () => store.countOpen(), countOpenByClient: async () => store.countOpenByClient() };
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
  const allowed = (id: string) => ({ id, status: 'allowed' as const, reason: 'acl_match', source: 'local_list' as const, latency_ms: 1 });
  const claimOf = (r: ClaimedRow): Claim => ({ id: r.id, claim: r.claim_count });
  const noSkip: string[] = [];
  const roomy = () => true;

  it('claims due rows oldest-due first, up to the limit, and not again while leased', (t) => {
    const { store } = setup(t);
    const rows = [row(30), row(10), row(20)];
    for (const r of rows) store.insert(r);
    const first = store.claimUndecided(100, 2, 1000);
    assert.deepEqual(first.map((r) => r.id), [rows[1]!.id, rows[2]!.id]);
    assert.ok(first.every((r) => r.state === 'authorizing' && r.claim_count === 1 && r.origin === 'http://127.0.0.1:1'));
    const second = store.claimUndecided(100, 10, 1000);
    assert.deepEqual(second.map((r) => r.id), [rows[0]!.id]);
    assert.equal(store.claimUndecided(500, 10, 1000).length, 0, 'leased rows are not claimable');
  });

  it('claims a row again once its lease expired (keyed on the claim time, not created_at)', (t) => {
    const { store } = setup(t);
    const r = row(0);
    store.insert(r);
    store.claimUndecided(1_000_000, 1, 5000);
    assert.equal(store.claimUndecided(1_004_999, 1, 5000).length, 0);
    const again = store.claimUndecided(1_005_000, 1, 5000);
    assert.equal(again.length, 1);
    assert.equal(again[0]!.claim_count, 2);
    assert.equal(again[0]!.decision_status, null, 'undecided rows are decided again');
  });

  it('a decision that waits for its origin is claimable for delivery, never for deciding', (t) => {
    const { store } = setup(t);
    const r = row(0);
    store.insert(r);
    const [c] = store.claimUndecided(10, 1, 100);
    assert.equal(store.recordDecision({ ...allowed(r.id), status: 'not_allowed', reason: 'blocked' }, claimOf(c!), false, 20), true);
    assert.equal(store.claimUndecided(20, 10, 100).length, 0);
    const again = store.claimDeliverable(20, 10, 100, noSkip, roomy);
    assert.equal(again[0]!.state, 'delivering');
    assert.equal(again[0]!.decision_status, 'not_allowed');
    assert.equal(again[0]!.claim_count, 2);
  });

  it('the delivery claim takes at most each origin\'s room and skips saturated origins', (t) => {
    const { store } = setup(t);
    const at = (i: number, url: string) => ({ ...row(i), callback_url: url });
    const rows = [
      ...Array.from({ length: 5 }, (_, i) => at(i, 'http://hung.example:8080/cb')),
      ...Array.from({ length: 3 }, (_, i) => at(10 + i, 'http://ok.example/cb')),
      at(20, 'http://busy.example/cb'),
    ];
    for (const r of rows) store.insert(r);
    for (const c of store.claimUndecided(30, 100, 10)) store.recordDecision(allowed(c.id), claimOf(c), false, 30);
    const got = store.claimDeliverable(40, 100, 1000, ['http://busy.example'], rooms((o) => (o === 'http://hung.example:8080' ? 2 : 100)));
    const byOrigin = new Map<string, number>();
    for (const g of got) byOrigin.set(g.origin, (byOrigin.get(g.origin) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(byOrigin), { 'http://hung.example:8080': 2, 'http://ok.example': 3 });
    assert.equal(store.nextDeliverable(['http://hung.example:8080']), 30, 'the busy origin\'s row is due');
    assert.equal(store.nextDeliverable(['http://hung.example:8080', 'http://busy.example']), 1040, 'then the lease of the claimed ones');
  });

  it('records attempts: retry waits until due, delivered drops the token, failed keeps it', (t) => {
    const { db, store } = setup(t);
    const [a, b] = [row(0), row(0)];
    store.insert(a);
    store.insert(b);
    const claims = store.claimUndecided(10, 2, 100).map(claimOf);
    for (const c of claims) assert.ok(store.recordDecision(allowed(c.id), c, true, 20));
    const claimA = claims.find((c) => c.id === a.id)!;
    const claimB = claims.find((c) => c.id === b.id)!;
    const base = { started_at: 30, duration_ms: 5, error: null, failure: null };
    assert.ok(store.recordAttempt({ ...base, id: a.id, attempt: 1, http_status: 503, outcome: 'retry', next_due_at: 5000 }, claimA.claim, 40));
    assert.ok(store.recordAttempt({ ...base, id: b.id, attempt: 1, http_status: 410, outcome: 'failed', next_due_at: null, failure: 'rejected: HTTP 410' }, claimB.claim, 40));
    assert.equal(store.claimDeliverable(4999, 10, 100, noSkip, roomy).length, 0, 'retry not due yet');
    const [again] = store.claimDeliverable(5000, 10, 100, noSkip, roomy);
    assert.equal(again!.id, a.id);
    assert.ok(store.recordAttempt({ ...base, id: a.id, attempt: 2, http_status: 204, outcome: 'delivered', next_due_at: null }, again!.claim_count, 5100));
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
    const [c] = store.claimUndecided(10, 1, 1_000_000);
    assert.equal(store.release([claimOf(c!)], 50), 1);
    assert.deepEqual(db.prepare('SELECT state, due_at, locked_at FROM charging_requests').get(), { state: 'queued', due_at: 50, locked_at: null });
    assert.equal(store.claimUndecided(50, 1, 10).length, 1);
  });
});

describe('fencing', () => {
  const base = { started_at: 30, duration_ms: 5, error: null, failure: null, http_status: 200, outcome: 'delivered' as const, next_due_at: null, attempt: 1 };

  it('a write under a released claim changes nothing: no decision, no attempt row', (t) => {
    const { db, store } = setup(t);
    const r = row(0);
    store.insert(r);
    const [c] = store.claimUndecided(10, 1, 1_000_000);
    const claim = { id: c!.id, claim: c!.claim_count };
    store.release([claim], 20);
    assert.equal(store.recordDecision({ id: r.id, status: 'allowed', reason: 'acl_match', source: 'local_list', latency_ms: 1 }, claim, true, 30), false);
    assert.equal(db.prepare('SELECT decision_status FROM charging_requests').pluck().get(), null);
    assert.equal(store.release([claim], 40), 0, 'a second release of the same claim changes nothing');
  });

  it('a write under a superseded claim (the lease expired and the row was claimed again) changes nothing', (t) => {
    const { db, store } = setup(t);
    const r = row(0);
    store.insert(r);
    const [old] = store.claimUndecided(10, 1, 100);
    const [fresh] = store.claimUndecided(200, 1, 100);
    assert.equal(fresh!.claim_count, old!.claim_count + 1);
    const d = { id: r.id, status: 'allowed' as const, reason: 'acl_match', source: 'local_list' as const, latency_ms: 1 };
    assert.equal(store.recordDecision(d, { id: r.id, claim: old!.claim_count }, true, 210), false);
    assert.equal(store.recordDecision(d, { id: r.id, claim: fresh!.claim_count }, true, 210), true);
    assert.equal(store.recordAttempt({ ...base, id: r.id }, old!.claim_count, 220), false);
    assert.equal(db.prepare('SELECT COUNT(*) FROM callback_attempts').pluck().get(), 0, 'no attempt row for a fenced write');
    assert.equal(store.recordAttempt({ ...base, id: r.id }, fresh!.claim_count, 220), true);
    assert.equal(db.prepare('SELECT COUNT(*) FROM callback_attempts').pluck().get(), 1);
  });
});

describe('queue bound', () => {
  it('reserves up to the bound, frees room as requests finish, and resyncs from the table', async (t) => {
    const { store } = setup(t);
    const depth = await createDepth(counts(store), 2);
    assert.equal(depth.tryReserve(), 'ok');
    assert.equal(depth.tryReserve(), 'ok');
    assert.equal(depth.tryReserve(), 'full', 'third reservation is refused');
    depth.unreserve();
    assert.equal(depth.tryReserve(), 'ok');
    // Two rows really committed, one finished by some other path: resync counts the table.
    store.insert(row(1));
    store.insert(row(2));
    depth.committed();
    depth.committed();
    depth.finished(2);
    assert.equal(depth.value, 0);
    await depth.resync();
    assert.equal(depth.value, 2);
    assert.equal(depth.tryReserve(), 'full');
  });

  it('gives each API client a share of the bound; finishing and resync keep the shares exact', async (t) => {
    const { store } = setup(t);
    const depth = await createDepth(counts(store), 10, { maxPerClient: 3 });
    for (let i = 0; i < 3; i++) assert.equal(depth.tryReserve('a'), 'ok');
    assert.equal(depth.tryReserve('a'), 'share', 'a is at its share');
    assert.equal(depth.tryReserve('b'), 'ok', 'b is not held up by a');
    assert.equal(depth.tryReserve(null), 'ok', 'requests without a key count only against the bound');
    depth.unreserve('a');
    assert.equal(depth.tryReserve('a'), 'ok');
    for (const c of ['a', 'a', 'a']) {
      store.insert({ ...row(1), client: c });
      depth.committed(c);
    }
    depth.finished(['a']);
    assert.equal(depth.of('a'), 2);
    await depth.resync();
    assert.equal(depth.of('a'), 3, 'the table has three open rows of a');
    assert.equal(depth.of('b'), 1, 'b\'s reservation is still uncommitted and kept');
  });
});
