import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp, submit as submitVia } from '../support/app.ts';
import { cli } from '../support/cli.ts';
import { startReceiver, type Receiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';
import { percentile } from './support/load.ts';

// docs/reliability.md, promise "one receiver's failures cost only its own requests"
// (SPEC §2 Isolation) and "an attempt row exists only for a POST that was made".
// Ordering, not timing, is asserted: the healthy callback must arrive while the hung
// receiver's POSTs are all still unanswered; the figures go to the test's diagnostics.

type Started = Awaited<ReturnType<typeof startApp>>;

const submit = (s: Started, callback_url: string) => submitVia(s.app, callback_url);


function attemptsOf(s: Started, id: string) {
  return s.app.db.prepare('SELECT attempt, started_at, duration_ms, http_status, error, outcome FROM callback_attempts WHERE request_id = ? ORDER BY attempt').all(id) as Array<{
    attempt: number; started_at: number; duration_ms: number; http_status: number | null; error: string | null; outcome: string;
  }>;
}

const countAttempts = (s: Started, ids: string[]) =>
  s.app.db.prepare('SELECT COUNT(*) FROM callback_attempts WHERE request_id IN (SELECT value FROM json_each(?))').pluck().get(JSON.stringify(ids)) as number;

/** A receiver that reads each POST and never answers (until the test closes it). */
function hanging(): Promise<Receiver> {
  return startReceiver(() => undefined);
}

describe('delivery isolation per callback origin', () => {
  it('1,000 callbacks to a hung host do not hold back a healthy receiver on another', { timeout: 90_000 }, async (t) => {
    const s = await startApp(t, { CALLBACK_TIMEOUT_MS: '60000', SHUTDOWN_TIMEOUT_MS: '200' });
    const hung = await hanging();
    t.after(() => hung.close());
    const healthy = await startReceiver();
    t.after(() => healthy.close());
    const hungIds: string[] = [];
    for (let i = 0; i < 1000; i++) hungIds.push((await submit(s, hung.url())).id);
    const { id, at } = await submit(s, healthy.url());
    await waitFor(() => healthy.callsFor(id).length === 1, { what: 'the healthy callback', timeoutMs: 20_000 });
    const waited = healthy.callsFor(id)[0]!.at - at;
    // Every hung POST is still unanswered, and the hung origin holds at most its bound.
    const perOrigin = s.config.callbackMaxInFlightPerOrigin;
    assert.ok(hung.calls.length <= perOrigin, `hung origin got ${hung.calls.length} POSTs in flight, bound ${perOrigin}`);
    assert.equal(countAttempts(s, hungIds), 0, 'no attempt recorded for a POST still in flight');
    const waiting = s.app.db.prepare("SELECT COUNT(*) FROM charging_requests WHERE state = 'delivering' AND locked_at IS NULL").pluck().get() as number;
    // At most one more bound's worth waits in memory, next in line; the rest in the table.
    assert.ok(waiting >= 1000 - 2 * perOrigin, `decided rows for the saturated origin wait in the table (${waiting})`);
    t.diagnostic(`healthy POST->callback with 1,000 hung: ${waited} ms; hung POSTs in flight ${hung.calls.length}`);
    // The operator's view: which receiver is holding what.
    const r = await cli(['receivers', '--json', '--db', s.config.dbPath]);
    assert.equal(r.code, 0, r.err);
    const rows = JSON.parse(r.out) as Array<{ origin: string; in_flight: number; queued: number }>;
    const hungRow = rows.find((x) => x.origin === new URL(hung.url()).origin)!;
    // in_flight counts what the service holds claimed: the POSTs, and those next in line.
    assert.ok(hungRow.in_flight >= hung.calls.length && hungRow.in_flight <= 2 * perOrigin, `in_flight ${hungRow.in_flight}`);
    assert.equal(hungRow.in_flight + hungRow.queued, 1000);
    assert.equal(rows[0]!.origin, hungRow.origin, 'the busiest receiver first');
    const text = await cli(['receivers', '--db', s.config.dbPath]);
    assert.match(text.out, new RegExp(`${new URL(hung.url()).origin}\\s+${hungRow.in_flight}\\s+${hungRow.queued}`));
  });

  it('scenario: WORKERS=1 WORKER_CONCURRENCY=2, 7 hung then 1 healthy: one POST, one true attempt row', { timeout: 60_000 }, async (t) => {
    const s = await startApp(t, { WORKERS: '1', WORKER_CONCURRENCY: '2', CALLBACK_TIMEOUT_MS: '6000', SHUTDOWN_TIMEOUT_MS: '200', CALLBACK_RETRY_BASE_MS: '60000' });
    const hung = await hanging();
    t.after(() => hung.close());
    const healthy = await startReceiver();
    t.after(() => healthy.close());
    const hungIds: string[] = [];
    for (let i = 0; i < 7; i++) hungIds.push((await submit(s, hung.url())).id);
    const { id } = await submit(s, healthy.url());
    await waitFor(() => attemptsOf(s, id).length === 1, { what: 'the healthy attempt recorded' });
    assert.equal(countAttempts(s, hungIds), 0, 'the hung POSTs were still in flight');
    // Past the hung receiver's first timeouts: every attempt row is a POST that was made
    // and timed out after CALLBACK_TIMEOUT_MS, measured from its own start.
    await waitFor(() => countAttempts(s, hungIds) >= 1, { what: 'a hung attempt recorded', timeoutMs: 20_000 });
    assert.equal(healthy.calls.length, 1, 'no duplicate POST');
    assert.deepEqual(attemptsOf(s, id).map((a) => [a.http_status, a.outcome]), [[200, 'delivered']]);
    assert.equal(s.app.db.prepare('SELECT state FROM charging_requests WHERE id = ?').pluck().get(id), 'delivered');
    const hungAttempts = hungIds.flatMap((h) => attemptsOf(s, h));
    assert.ok(hungAttempts.length <= hung.calls.length, `${hungAttempts.length} attempt rows for ${hung.calls.length} POSTs`);
    for (const a of hungAttempts) {
      assert.equal(a.error, 'timeout');
      assert.ok(a.duration_ms >= 5900, `a timed-out attempt lasted its whole deadline (${a.duration_ms} ms)`);
    }
  });

  it('five receivers: one hangs, one sheds with 503 + Retry-After twice, three healthy', { timeout: 90_000 }, async (t) => {
    const s = await startApp(t, { CALLBACK_TIMEOUT_MS: '20000', SHUTDOWN_TIMEOUT_MS: '200', CALLBACK_RETRY_BASE_MS: '10', CALLBACK_MAX_IN_FLIGHT_PER_ORIGIN: process.env.PO ?? '4' });
    const hung = await hanging();
    t.after(() => hung.close());
    const seen = new Map<string, number>();
    const shedding = await startReceiver((call, _n, res) => {
      const id = String(call.headers['webhook-id']);
      const n = (seen.get(id) ?? 0) + 1;
      seen.set(id, n);
      if (n <= 2) res.writeHead(503, { 'retry-after': '1' }).end();
      else res.writeHead(200).end();
    });
    t.after(() => shedding.close());
    const healthy = [await startReceiver(), await startReceiver(), await startReceiver()];
    for (const h of healthy) t.after(() => h.close());

    // Warm the worker threads first: the figures below are about isolation, not start-up.
    const warm = await submit(s, healthy[0]!.url('/warm'));
    await waitFor(() => healthy[0]!.callsFor(warm.id).length === 1, { what: 'warm-up callback' });
    const sent: Array<{ id: string; at: number; rx: Receiver }> = [];
    const shedIds: string[] = [];
    const hungIds: string[] = [];
    for (let round = 0; round < 40; round++) {
      if (round % 2 === 0) hungIds.push((await submit(s, hung.url())).id);
      if (round % 8 === 0) shedIds.push((await submit(s, shedding.url())).id);
      for (const h of healthy) sent.push({ ...(await submit(s, h.url())), rx: h });
    }
    await waitFor(() => sent.every((x) => x.rx.callsFor(x.id).length >= 1), { what: 'every healthy callback', timeoutMs: 30_000 });
    await waitFor(() => shedIds.every((x) => s.app.db.prepare('SELECT state FROM charging_requests WHERE id = ?').pluck().get(x) === 'delivered'), {
      what: 'the shedding receiver served on its third attempt',
      timeoutMs: 30_000,
    });
    const waits = sent.map((x) => x.rx.callsFor(x.id)[0]!.at - x.at);
    for (const x of sent) {
      assert.equal(x.rx.callsFor(x.id).length, 1, 'each healthy callback delivered once');
      assert.deepEqual(attemptsOf(s, x.id).map((a) => a.outcome), ['delivered'], 'one true attempt row');
    }
    for (const id of shedIds) {
      const a = attemptsOf(s, id);
      assert.deepEqual(a.map((x) => x.http_status), [503, 503, 200]);
      assert.equal(seen.get(id), 3, 'one POST per attempt row');
      for (let i = 1; i < a.length; i++) {
        const gap = a[i]!.started_at - (a[i - 1]!.started_at + a[i - 1]!.duration_ms);
        assert.ok(gap >= 990, `attempts spaced by the receiver's Retry-After (gap ${gap} ms)`);
      }
    }
    assert.equal(countAttempts(s, hungIds), 0, 'no attempt row while the hung POSTs are in flight');
    assert.ok(hung.calls.length <= s.config.callbackMaxInFlightPerOrigin, `hung origin held at its bound (${hung.calls.length})`);
    const r = await cli(['receivers', '--json', '--all', '--db', s.config.dbPath]);
    const rows = JSON.parse(r.out) as Array<{ origin: string; last_status: string; consecutive_failures: number; attempts: number; delivered: number }>;
    const shed = rows.find((x) => x.origin === new URL(shedding.url()).origin)!;
    assert.deepEqual([shed.last_status, shed.consecutive_failures, shed.attempts, shed.delivered], ['200', 0, shedIds.length * 3, shedIds.length]);
    t.diagnostic(`healthy POST->callback with a hung and a shedding origin: p50 ${percentile(waits, 50)} ms, p99 ${percentile(waits, 99)} ms, n=${waits.length}`);
  });
});
