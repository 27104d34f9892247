import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { AttemptRecord, ClaimRequest, ClaimedRow, Decision, NewRequest, Queue } from '../../src/queue/queue.ts';
import { ENGINES, type Engine } from '../support/engines.ts';
import { waitFor } from '../support/tmp.ts';

// The queue's operations, the same cases against every engine (test/support/engines.ts).

function row(created_at: number, over: Partial<NewRequest> = {}): NewRequest {
  return {
    id: randomUUID(), station_id: '123e4567-e89b-12d3-a456-426614174000', driver_token: 'ABCD-efgh1234567890_~valid.token',
    token_hash: 'h', token_mask: 'ABCD…oken', callback_url: 'http://127.0.0.1:1/cb', created_at, ...over,
  };
}

interface Ask {
  undecided?: number;
  deliverable?: number;
  lease?: number;
  skip?: string[];
  room?: (origin: string) => number;
}

/** A claim as the claim loop makes it, with fixed limits and per-origin room. */
function ask(now: number, a: Ask = {}): ClaimRequest {
  const taken = new Map<string, number>();
  return {
    now, leaseMs: a.lease ?? 1000,
    reserve: () => a.undecided ?? 0,
    deliverable: () => a.deliverable ?? 0,
    saturated: () => a.skip ?? [],
    take(o) {
      const n = taken.get(o) ?? 0;
      if (n >= (a.room?.(o) ?? 100)) return false;
      taken.set(o, n + 1);
      return true;
    },
    wantNext: () => ({ undecided: true, deliverable: true }),
  };
}

const allowed = (id: string): Decision => ({ id, status: 'allowed', reason: 'acl_match', source: 'local_list', latency_ms: 1 });
const claimOf = (r: ClaimedRow) => ({ id: r.id, claim: r.claim_count });
const attempt = (id: string, n: number, over: Partial<AttemptRecord> = {}): AttemptRecord => ({
  id, attempt: n, started_at: 30, duration_ms: 5, http_status: 200, error: null, outcome: 'delivered', next_due_at: null, failure: null, ...over,
});

async function undecided(q: Queue, now: number, n: number, lease = 1000) {
  return (await q.claim(ask(now, { undecided: n, lease }))).undecided;
}

async function decide(q: Queue, rows: ClaimedRow[], keep: boolean, at: number) {
  return q.recordDecisions(rows.map((r) => ({ decision: allowed(r.id), claim: claimOf(r), keep })), new Map(), at);
}

for (const engine of ENGINES) {
  describe(`queue on ${engine.name}`, { skip: engine.skip }, () => {
    it('accepts and claims undecided rows in due order; a held lease is not claimed again until it expires', async (t) => {
      const { queue } = await engine.open(t);
      const rows = [row(30), row(10), row(20)];
      for (const r of rows) assert.equal(await queue.accept(r, null, null, null), null);
      const got = await undecided(queue, 100, 2, 5000);
      assert.deepEqual(got.map((r) => r.id), [rows[1]!.id, rows[2]!.id], 'oldest due first');
      assert.ok(got.every((r) => r.claim_count === 1 && r.state === 'authorizing'));
      assert.deepEqual((await undecided(queue, 200, 10, 5000)).map((r) => r.id), [rows[0]!.id]);
      assert.equal((await undecided(queue, 5099, 10, 5000)).length, 0, 'leases held');
      const again = await undecided(queue, 5100, 10, 5000);
      assert.equal(again.length, 2, 'expired leases are claimable, keyed on the claim time');
      assert.ok(again.every((r) => r.claim_count === 2));
    });

    it('an op that fails fails alone: the other writes of its turn commit', async (t) => {
      const { queue, all } = await engine.open(t);
      const [a, b, c] = [row(1), row(2), row(3)];
      await queue.accept(a, null, null, null);
      // One turn: a duplicate id (a constraint the op breaks) between two good writes.
      const [first, dup, second] = await Promise.allSettled([
        queue.accept(b, null, null, null), queue.accept({ ...a }, null, null, null), queue.accept(c, null, null, 500),
      ]);
      assert.deepEqual([first.status, dup.status, second.status], ['fulfilled', 'rejected', 'fulfilled']);
      const ids = (await all<{ id: string }>('SELECT id FROM charging_requests ORDER BY created_at')).map((r) => r.id);
      assert.deepEqual(ids, [a.id, b.id, c.id]);
    });

    it('an accept handed straight to the dispatcher is stored claimed under its lease', async (t) => {
      const { queue } = await engine.open(t);
      const r = row(1000);
      await queue.accept(r, null, null, 500);
      assert.equal((await undecided(queue, 1499, 10)).length, 0);
      const [c] = await undecided(queue, 1500, 10);
      assert.equal(c!.claim_count, 2, 'the hand-off was claim 1');
    });

    it('a decision kept for delivery holds its lease; one handed back is claimable for delivery at once, never for deciding', async (t) => {
      const { queue } = await engine.open(t);
      const [a, b] = [row(0), row(0)];
      await queue.accept(a, null, null, null);
      await queue.accept(b, null, null, null);
      const got = await undecided(queue, 10, 2, 100);
      const ok = await queue.recordDecisions([
        { decision: allowed(a.id), claim: claimOf(got.find((r) => r.id === a.id)!), keep: true },
        { decision: { ...allowed(b.id), status: 'not_allowed', reason: 'blocked' }, claim: claimOf(got.find((r) => r.id === b.id)!), keep: false },
      ], new Map(), 20);
      assert.deepEqual(ok, [true, true]);
      const r = await queue.claim(ask(20, { undecided: 10, deliverable: 10 }));
      assert.equal(r.undecided.length, 0);
      assert.deepEqual(r.deliverable.map((x) => [x.id, x.decision_status, x.claim_count]), [[b.id, 'not_allowed', 2]]);
    });

    it('the delivery claim takes at most each origin\'s room and passes over saturated origins', async (t) => {
      const { queue } = await engine.open(t);
      const at = (i: number, url: string) => row(i, { callback_url: url });
      const rows = [
        ...Array.from({ length: 5 }, (_, i) => at(i, 'http://hung.example:8080/cb')),
        ...Array.from({ length: 3 }, (_, i) => at(10 + i, 'http://ok.example/cb')),
        at(20, 'http://busy.example/cb'),
      ];
      for (const r of rows) await queue.accept(r, null, null, null);
      await decide(queue, await undecided(queue, 30, 100, 10), false, 30);
      const got = (await queue.claim(ask(40, {
        deliverable: 100, lease: 1000, skip: ['http://busy.example'], room: (o) => (o === 'http://hung.example:8080' ? 2 : 100),
      }))).deliverable;
      const byOrigin: Record<string, number> = {};
      for (const g of got) byOrigin[g.origin] = (byOrigin[g.origin] ?? 0) + 1;
      assert.deepEqual(byOrigin, { 'http://hung.example:8080': 2, 'http://ok.example': 3 });
    });

    it('records attempts: a retry waits until due, delivered drops the token, failed keeps it; origin stats fold in', async (t) => {
      const { queue, all } = await engine.open(t);
      const [a, b] = [row(0), row(0)];
      await queue.accept(a, null, null, null);
      await queue.accept(b, null, null, null);
      const got = await undecided(queue, 10, 2, 100);
      await decide(queue, got, true, 20);
      const ca = got.find((r) => r.id === a.id)!;
      const cb = got.find((r) => r.id === b.id)!;
      assert.deepEqual(await queue.recordAttempts('http://127.0.0.1:1', [
        attempt(a.id, 1, { http_status: 503, outcome: 'retry', next_due_at: 5000 }),
        attempt(b.id, 1, { http_status: 410, outcome: 'failed', failure: 'rejected: HTTP 410' }),
      ], [ca.claim_count, cb.claim_count], 40), [true, true]);
      assert.equal((await queue.claim(ask(4999, { deliverable: 10 }))).deliverable.length, 0, 'retry not due yet');
      const [again] = (await queue.claim(ask(5000, { deliverable: 10, lease: 100 }))).deliverable;
      assert.equal(again!.id, a.id);
      assert.deepEqual(await queue.recordAttempts('http://127.0.0.1:1', [attempt(a.id, 2, { http_status: 204 })], [again!.claim_count], 5100), [true]);
      const get = (id: string) => all('SELECT state, attempts, driver_token, finished_at, last_error FROM charging_requests WHERE id = ?', id);
      assert.deepEqual(await get(a.id), [{ state: 'delivered', attempts: 2, driver_token: null, finished_at: 5100, last_error: null }]);
      assert.deepEqual(await get(b.id), [{ state: 'failed', attempts: 1, driver_token: a.driver_token, finished_at: 40, last_error: 'rejected: HTTP 410' }]);
      assert.equal((await all('SELECT id FROM callback_attempts')).length, 3);
      assert.deepEqual(await all('SELECT origin, attempts, delivered, consecutive_failures, last_status FROM callback_origins'), [
        { origin: 'http://127.0.0.1:1', attempts: 3, delivered: 1, consecutive_failures: 0, last_status: '204' },
      ]);
      assert.equal(await queue.countFailed(), 1);
      assert.equal(await queue.countOpen(), 0);
    });

    it('fencing: writes under a released or superseded claim change nothing and leave no attempt row', async (t) => {
      const { queue, all } = await engine.open(t);
      const r = row(0);
      await queue.accept(r, null, null, null);
      const [old] = await undecided(queue, 10, 1, 100);
      const [fresh] = await undecided(queue, 200, 1, 100);
      assert.equal(fresh!.claim_count, old!.claim_count + 1);
      assert.deepEqual(await decide(queue, [old!], true, 210), [false]);
      assert.deepEqual(await decide(queue, [fresh!], true, 210), [true]);
      assert.deepEqual(await queue.recordAttempts('o', [attempt(r.id, 1)], [old!.claim_count], 220), [false]);
      assert.equal((await all('SELECT id FROM callback_attempts')).length, 0, 'no attempt row for a fenced write');
      assert.equal(await queue.release([claimOf(fresh!)], 230), 1);
      assert.equal(await queue.release([claimOf(fresh!)], 240), 0, 'a second release of the same claim changes nothing');
      assert.deepEqual(await queue.recordAttempts('o', [attempt(r.id, 1)], [fresh!.claim_count], 250), [false]);
    });

    it('release hands claimed rows back at once, undecided ones to queued', async (t) => {
      const { queue, all } = await engine.open(t);
      const r = row(0);
      await queue.accept(r, null, null, null);
      const [c] = await undecided(queue, 10, 1, 1_000_000);
      assert.equal(await queue.release([claimOf(c!)], 50), 1);
      assert.deepEqual(await all('SELECT state, due_at, locked_at FROM charging_requests'), [{ state: 'queued', due_at: 50, locked_at: null }]);
      assert.equal((await undecided(queue, 50, 1, 10)).length, 1);
    });

    it('keeps Idempotency-Keys, counts open requests per client, reads a request back', async (t) => {
      const { queue } = await engine.open(t);
      const r = row(1000, { client: 'a' });
      await queue.accept(r, 'a/k1', 'hash1', null);
      await queue.accept(row(2000, { client: 'a' }), null, null, null);
      await queue.accept(row(3000, { client: 'b' }), null, null, null);
      assert.deepEqual(await queue.findKey('a/k1', 0), { body_hash: 'hash1', request_id: r.id });
      assert.equal(await queue.findKey('a/k1', 1001), null, 'expired');
      assert.equal(await queue.findKey('a/k2', 0), null);
      assert.equal(await queue.countOpen(), 3);
      assert.deepEqual(Object.fromEntries(await queue.countOpenByClient()), { a: 2, b: 1 });
      assert.equal(await queue.oldestOpenCreatedAt(), 1000);
      const v = await queue.status(r.id);
      assert.equal(v?.request_id, r.id);
      assert.equal(v?.state, 'queued');
      assert.equal(v?.driver_token, 'ABCD…oken', 'masked');
      assert.equal(await queue.status(randomUUID()), null);
    });

    it('prunes finished requests with their attempts, expired keys and idle origins, in batches', async (t) => {
      const { queue, all } = await engine.open(t);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = row(0);
        ids.push(r.id);
        await queue.accept(r, `k${i}`, 'h', null);
      }
      const got = await undecided(queue, 0, 5, 10);
      await decide(queue, got, true, 0);
      await queue.recordAttempts('http://o', got.map((c) => attempt(c.id, 1)), got.map((c) => c.claim_count), 100);
      assert.equal(await queue.prune('requests', 101, 3), 3);
      assert.equal(await queue.prune('requests', 101, 3), 2);
      assert.equal(await queue.prune('requests', 101, 3), 0);
      assert.equal((await all('SELECT id FROM callback_attempts')).length, 0);
      assert.equal(await queue.prune('keys', 1, 10), 5);
      assert.equal(await queue.prune('origins', 101, 10), 1);
    });

    if (engine.name === 'postgres') severalInstances(engine);
  });
}

// Several instances on one database: PostgreSQL only (a SQLite file has one service, by its lock).
function severalInstances(pg: Engine): void {
  describe('several instances on one database', () => {
    it('two instances claiming at once take each request exactly once (SKIP LOCKED)', async (t) => {
      const a = await pg.open(t);
      const b = await a.another();
      const N = 400;
      for (let i = 0; i < N; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, j) => (j % 2 ? a : b).queue.accept(row(i + j), null, null, null)));
      }
      const seen = new Map<string, number>();
      const loop = async (q: Queue) => {
        for (;;) {
          const got = await undecided(q, 10_000, 7, 1_000_000);
          if (got.length === 0) return;
          for (const r of got) seen.set(r.id, (seen.get(r.id) ?? 0) + 1);
        }
      };
      await Promise.all([loop(a.queue), loop(b.queue), loop(a.queue), loop(b.queue)]);
      assert.equal(seen.size, N, 'every request claimed');
      assert.deepEqual([...new Set(seen.values())], [1], 'none twice');
    });

    it('QUEUE_MAX_SIZE holds across instances, and an Idempotency-Key is unique across them', async (t) => {
      const a = await pg.open(t, { maxOpen: 3 });
      const b = await a.another({ maxOpen: 3 });
      const outcomes = await Promise.all([a, b, a, b, a].map((o) => o.queue.accept(row(1), null, null, null)));
      // In a burst an instance may be refused while the other holds room it has not spent
      // (the documented error, one way only: docs/postgres.md); never more than the room.
      const accepted = outcomes.filter((o) => o === null).length;
      assert.ok(accepted >= 1 && accepted <= 3, `accepted ${accepted} of 5 with room for 3`);
      assert.equal(outcomes.filter((o) => o === 'full').length, 5 - accepted);
      assert.equal(await a.queue.countOpen(), accepted);
      // One at a time the rest of the room is taken (unspent room goes back within ~1 s), and no more.
      let open = accepted;
      await waitFor(async () => {
        if ((await [a, b][open % 2]!.queue.accept(row(1), null, null, null)) === null) open++;
        return open === 3;
      }, { what: 'the rest of the room taken one at a time' });
      assert.equal(await b.queue.accept(row(1), null, null, null), 'full');
      assert.equal(await a.queue.accept(row(1), null, null, null), 'full');
      assert.equal(await a.queue.countOpen(), 3);

      const c = await a.another();
      const d = await a.another();
      const first = row(2);
      const second = row(3);
      const [x, y] = await Promise.all([c.queue.accept(first, 'key-1', 'h1', null), d.queue.accept(second, 'key-1', 'h2', null)]);
      const winners = [x, y].filter((o) => o === null).length;
      assert.equal(winners, 1, 'one of the two accepts wrote the key');
      const loser = x === null ? y : x;
      const winner = x === null ? first : second;
      assert.deepEqual(loser, { body_hash: x === null ? 'h1' : 'h2', request_id: winner.id }, 'the other got the first request as its answer');
      const stored = await c.all<{ id: string }>('SELECT id FROM charging_requests WHERE id IN (?, ?)', first.id, second.id);
      assert.deepEqual(stored.map((r) => r.id), [winner.id], 'the loser wrote no row');
    });

    it('an instance that dies: its leases are handed back once its session is gone, and the survivor takes the work', async (t) => {
      const dead = await pg.open(t);
      const survivor = await dead.another();
      const rows = [row(1), row(2), row(3)];
      for (const r of rows) await dead.queue.accept(r, null, null, null);
      const held = await undecided(dead.queue, 10, 3, 10_000_000);
      assert.equal(held.length, 3);
      assert.equal((await undecided(survivor.queue, 20, 10)).length, 0, 'leased to the other instance');
      await dead.kill();
      const { releaseDeadInstances } = await import('../../src/queue/pg/instances.ts');
      const { connectPg } = await import('../../src/queue/pg/connect.ts');
      const sql = connectPg(survivor.where, { schema: survivor.schema!, max: 1 });
      t.after(() => sql.end());
      // The killed session's advisory lock goes with its connection; the server notices at once.
      let r = { instances: 0, released: 0 };
      for (let i = 0; i < 50 && r.released === 0; i++) {
        r = await releaseDeadInstances(sql, 'survivor', 30);
        if (r.released === 0) await new Promise((res) => setTimeout(res, 100));
      }
      assert.deepEqual(r, { instances: 1, released: 3 });
      const taken = await undecided(survivor.queue, 30, 10);
      assert.deepEqual(taken.map((x) => x.id).sort(), rows.map((x) => x.id).sort());
      assert.ok(taken.every((x) => x.claim_count === 2));
      // The dead instance's late write is fenced out.
      const late = await survivor.queue.recordDecisions([{ decision: allowed(held[0]!.id), claim: claimOf(held[0]!), keep: true }], new Map(), 40);
      assert.deepEqual(late, [false]);
    });

    it('an instance whose session was cut takes its lock again, and is not taken for dead after that', async (t) => {
      const a = await pg.open(t);
      const r = row(1);
      await a.queue.accept(r, null, null, null);
      const [held] = await undecided(a.queue, 10, 1, 10_000_000);
      const locks = () => a.all<{ pid: number }>(`SELECT pid FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
      const [before] = await locks();
      await a.all('SELECT pg_terminate_backend(?)', before!.pid);
      // Within one look (5 s) the instance holds its lock again, on a new session.
      await waitFor(async () => (await locks()).some((l) => l.pid !== before!.pid), { what: 'the lock taken again', timeoutMs: 15_000 });
      const { releaseDeadInstances } = await import('../../src/queue/pg/instances.ts');
      const { connectPg } = await import('../../src/queue/pg/connect.ts');
      const sql = connectPg(a.where, { schema: a.schema!, max: 1 });
      t.after(() => sql.end());
      assert.deepEqual(await releaseDeadInstances(sql, 'other', 20), { instances: 0, released: 0 });
      assert.deepEqual(await decide(a.queue, [held!], true, 30), [true], 'its lease still holds');
    });

    it('a lease that expires is taken over by another instance without any release', async (t) => {
      const a = await pg.open(t);
      const b = await a.another();
      const r = row(1);
      await a.queue.accept(r, null, null, null);
      const [held] = await undecided(a.queue, 10, 1, 100);
      assert.equal((await undecided(b.queue, 109, 1)).length, 0);
      const [taken] = await undecided(b.queue, 110, 1);
      assert.equal(taken!.id, r.id);
      assert.deepEqual(await decide(a.queue, [held!], true, 120), [false], 'the first holder is fenced out');
      assert.deepEqual(await decide(b.queue, [taken!], true, 120), [true]);
    });
  });
}
