import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Decided } from '../../src/queue/authcache.ts';
import type { Decision, NewRequest } from '../../src/queue/queue.ts';
import { ENGINES } from '../support/engines.ts';
import { waitFor } from '../support/tmp.ts';

// Tables the service writes without end stay bounded on both engines: authorizer_cache
// (AUTHORIZER_CACHE_MAX_ENTRIES, least recently used go) and unknown_tokens (least recently
// seen go); and, on PostgreSQL, QUEUE_MAX_SIZE across instances taking room in blocks
// (src/queue/pg/credits.ts).

const STATION = '123e4567-e89b-12d3-a456-426614174000';

function row(created_at: number, token = 'ABCD-efgh1234567890_~valid.token'): NewRequest {
  return {
    id: randomUUID(), station_id: STATION, driver_token: token, token_hash: 'h', token_mask: 'ABCD…oken',
    callback_url: 'http://127.0.0.1:1/cb', created_at,
  };
}

/** A decision for `id` that stores a new upstream answer and records an unknown token. */
function decision(id: string, i: number): Decision {
  return {
    id, status: 'not_allowed', reason: 'unknown_token', source: 'upstream', latency_ms: 1, unknown_token: true,
    cache_put: {
      token_hash: `hash-${i}`, token_type: 'RFID', station_id: STATION, status: 'not_allowed', reason: 'unknown_token',
      stored_at: i, fresh_until: i + 1000,
    },
  };
}

for (const engine of ENGINES) {
  describe(`bounded tables on ${engine.name}`, { skip: engine.skip }, () => {
    it('authorizer_cache and unknown_tokens keep the most recent rows up to their bounds', async (t) => {
      const q = await engine.open(t, { maxCacheEntries: 20, maxUnknown: 10 });
      const N = 60;
      for (let batch = 0; batch < N; batch += 10) {
        const rows = Array.from({ length: 10 }, (_x, k) => row(batch + k, `TOKEN-${String(batch + k).padStart(4, '0')}`));
        for (const r of rows) assert.equal(await q.queue.accept(r, null, null, null), null);
        const claimed = (await q.queue.claim({
          now: 1000 + batch, leaseMs: 1000, reserve: () => 10, deliverable: () => 0, saturated: () => [], take: () => true,
          wantNext: () => ({ undecided: false, deliverable: false }),
        })).undecided;
        assert.equal(claimed.length, 10);
        const requests = new Map<string, Decided>(rows.map((r) => [r.id, { id: r.id, station_id: r.station_id, driver_token: r.driver_token }]));
        const writes = claimed.map((c) => ({
          decision: decision(c.id, batch + rows.findIndex((r) => r.id === c.id)), claim: { id: c.id, claim: c.claim_count }, keep: false,
        }));
        // Each batch later than the one before: recency decides what stays.
        assert.deepEqual(await q.queue.recordDecisions(writes, requests, 2000 + batch), writes.map(() => true));
      }
      const cache = await q.all<{ token_hash: string }>('SELECT token_hash FROM authorizer_cache');
      assert.equal(cache.length, 20, 'authorizer_cache at its bound');
      assert.deepEqual(cache.map((r) => Number(r.token_hash.slice(5))).sort((a, b) => a - b).slice(0, 1), [40], 'the 20 most recent kept');
      const unknown = await q.all<{ last_seen_at: number }>('SELECT last_seen_at FROM unknown_tokens');
      assert.equal(unknown.length, 10, 'unknown_tokens at its bound');
      assert.ok(unknown.every((r) => Number(r.last_seen_at) === 2050), 'the most recently seen kept');
    });
  });
}

const pg = ENGINES.find((e) => e.name === 'postgres')!;

describe('QUEUE_MAX_SIZE across PostgreSQL instances (room taken in blocks)', { skip: pg.skip }, () => {
  it('concurrent accepts of two instances never exceed it; the room comes back as requests finish and instances stop or die', async (t) => {
    const MAX = 20;
    const a = await pg.open(t, { maxOpen: MAX });
    const b = await a.another({ maxOpen: MAX });
    const burst = (who: typeof a[], n: number) =>
      Promise.all(Array.from({ length: n }, (_x, i) => who[i % who.length]!.queue.accept(row(i), null, null, null)));
    const open = async () => Number((await a.all<{ n: number }>(
      "SELECT COUNT(*) AS n FROM charging_requests WHERE state IN ('queued','authorizing','delivering')"))[0]!.n);
    // A burst, then one at a time until full: in a burst a row committed but not yet settled
    // is counted twice for a moment (refusing early, the documented error), one at a time not.
    const fill = async (who: typeof a) => {
      let n = (await burst([who], 30)).filter((o) => o === null).length;
      for (let i = 0; i < 30 && (await who.queue.accept(row(i), null, null, null)) === null; i++) n++;
      return n;
    };
    const depth = async () => Number((await a.all<{ open: number }>('SELECT open FROM queue_depth'))[0]!.open);

    const first = await burst([a, b], 60);
    const accepted = first.filter((o) => o === null).length;
    assert.ok(accepted <= MAX && accepted > 0, `accepted ${accepted} of 60 with room for ${MAX}`);
    assert.equal(first.filter((o) => o === 'full').length, 60 - accepted);
    assert.equal(await open(), accepted);
    assert.equal(await depth(), accepted, 'queue_depth (the shards summed) agrees with the table');

    // Finished requests free their room; an instance that stops gives its room back.
    await a.all("UPDATE charging_requests SET state = 'delivered', finished_at = 1 WHERE state = 'queued'");
    assert.equal(await depth(), 0);
    await b.queue.close();
    assert.equal(await fill(a), MAX, 'all the room, to the last request');
    assert.equal(await open(), MAX);

    // An instance that dies holding room: it is freed once its session is gone.
    await a.all("UPDATE charging_requests SET state = 'delivered', finished_at = 1 WHERE state = 'queued'");
    // An idle instance writes down what it really holds (its spent room is counted by queue_depth).
    await waitFor(async () => Number((await a.all<{ n: number }>('SELECT COALESCE(SUM(credits), 0) AS n FROM queue_credit'))[0]!.n) === 0,
      { what: 'the idle instance to give its room back', timeoutMs: 10_000 });
    const c = await a.another({ maxOpen: MAX });
    assert.equal(await c.queue.accept(row(99), null, null, null), null);
    const held = await a.all<{ credits: number }>('SELECT credits FROM queue_credit');
    assert.ok(held.length >= 1, 'the instance recorded the room it holds');
    await c.kill();
    const { releaseDeadInstances } = await import('../../src/queue/pg/instances.ts');
    const { connectPg } = await import('../../src/queue/pg/connect.ts');
    const sql = connectPg(a.where, { schema: a.schema!, max: 1 });
    t.after(() => sql.end());
    let r = { instances: 0, released: 0 };
    for (let i = 0; i < 50 && r.instances === 0; i++) {
      r = await releaseDeadInstances(sql, 'another', 30);
      if (r.instances === 0) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(r.instances >= 1, 'the dead instance was found');
    assert.equal(await fill(a), MAX - 1, 'all the room but the dead instance\'s open request');
  });
});
