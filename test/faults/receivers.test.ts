import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp, submit as submitVia } from '../support/app.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';
import { freePort, percentile } from './support/load.ts';
import * as hostile from './support/hostile.ts';

// docs/reliability.md, promise "a bad receiver ends in a documented state and hurts no
// other": every kind of misbehaving callback receiver at once, each request ending as
// SPEC §2 / README "Callback delivery" say, while a healthy receiver is served promptly.
// The TLS receiver's self-signed certificate is a test fixture (test/faults/fixtures/).


type Started = Awaited<ReturnType<typeof startApp>>;

async function submit(s: Started, callback_url: string): Promise<string> {
  return (await submitVia(s.app, callback_url)).id;
}


interface Outcome {
  state: string;
  attempts: Array<{ at: number; duration_ms: number; http_status: number | null; error: string | null; outcome: string }>;
  last_error: string | null;
}

function outcome(s: Started, id: string): Outcome {
  const row = s.app.db.prepare('SELECT state, last_error FROM charging_requests WHERE id = ?').get(id) as { state: string; last_error: string | null };
  const attempts = s.app.db
    .prepare('SELECT started_at AS at, duration_ms, http_status, error, outcome FROM callback_attempts WHERE request_id = ? ORDER BY attempt')
    .all(id) as Outcome['attempts'];
  return { ...row, attempts };
}

describe('hostile callback receivers', () => {
  it('each ends in its documented state, and a healthy receiver is served meanwhile', { timeout: 60_000 }, async (t) => {
    const TIMEOUT = 1000;
    const MAX_ATTEMPTS = 3;
    const s = await startApp(t, {
      CALLBACK_TIMEOUT_MS: String(TIMEOUT),
      CALLBACK_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
      CALLBACK_RETRY_BASE_MS: '10',
      CALLBACK_RETRY_MAX_MS: '3000',
      SHUTDOWN_TIMEOUT_MS: '500',
    });
    const healthy = await startReceiver();
    t.after(() => healthy.close());
    const target = await startReceiver(); // where the redirects point: must never be called
    t.after(() => target.close());
    const open = async (h: Promise<hostile.Hostile>) => {
      const r = await h;
      t.after(() => r.close());
      return r;
    };
    const rx = {
      hanging: await open(hostile.hanging()),
      dripHeaders: await open(hostile.dripHeaders()),
      dripBody: await open(hostile.dripBody()),
      hugeBody: await open(hostile.hugeBody()),
      r301: await open(hostile.answering(301, { location: target.url() })),
      r302: await open(hostile.answering(302, { location: target.url() })),
      r307: await open(hostile.answering(307, { location: target.url() })),
      r308: await open(hostile.answering(308, { location: target.url() })),
      gone: await open(hostile.answering(410)),
      tooMany: await open(hostile.firstThen(1, 429, { 'retry-after': '1' })),
      unavailable: await open(hostile.firstThen(1, 503, { 'retry-after': '1' })),
      tls: await open(hostile.untrustedTls()),
      reset: await open(hostile.resetting()),
    };
    // Plain HTTP spoken where the URL says https: the handshake fails.
    const plainForTls = await startReceiver();
    t.after(() => plainForTls.close());
    const urls: Record<string, string> = Object.fromEntries(Object.entries(rx).map(([k, v]) => [k, v.url]));
    urls.tlsToPlain = plainForTls.url().replace('http:', 'https:');
    urls.dns = hostile.UNRESOLVABLE_URL;
    urls.refused = `http://127.0.0.1:${await freePort()}/cb`;

    const ids: Record<string, string> = {};
    for (const [k, url] of Object.entries(urls)) ids[k] = await submit(s, url);

    // While all of that misbehaves, a healthy receiver gets its callbacks at once.
    const healthyLatency: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = Date.now();
      const id = await submit(s, healthy.url());
      await waitFor(() => healthy.callsFor(id).length > 0, { timeoutMs: 10_000, what: 'healthy callback' });
      healthyLatency.push(Date.now() - t0);
    }

    const final = (id: string) => ['delivered', 'failed'].includes(outcome(s, id).state);
    await waitFor(() => Object.values(ids).every(final), { timeoutMs: 30_000, intervalMs: 50, what: 'every hostile request final' }).catch((err: Error) => {
      const open = Object.entries(ids).filter(([, id]) => !final(id)).map(([k, id]) => `${k}: ${JSON.stringify(outcome(s, id))}`);
      throw new Error(`${err.message}\n${open.join('\n')}`);
    });
    const o = Object.fromEntries(Object.entries(ids).map(([k, id]) => [k, outcome(s, id)])) as Record<string, Outcome>;
    const table = Object.entries(o).map(([k, v]) => `${k}: ${v.state} after ${v.attempts.length} (${v.attempts.map((a) => `${a.http_status ?? a.error} ${a.duration_ms}ms`).join(', ')}) ${v.last_error ?? ''}`);
    t.diagnostic(table.join('\n'));
    t.diagnostic(`healthy receiver p50=${percentile(healthyLatency, 50)}ms max=${Math.max(...healthyLatency)}ms while the hostile ones were busy`);

    const failedAfterRetries = (k: string, error: RegExp) => {
      assert.equal(o[k]!.state, 'failed', `${k}: ${table.join('\n')}`);
      assert.equal(o[k]!.attempts.length, MAX_ATTEMPTS, `${k} is retried up to CALLBACK_MAX_ATTEMPTS`);
      assert.ok(o[k]!.attempts.every((a) => a.http_status === null && error.test(String(a.error)) && a.outcome !== 'delivered'), `${k}: ${JSON.stringify(o[k])}`);
      assert.match(String(o[k]!.last_error), /^max_attempts: /);
      for (const a of o[k]!.attempts) assert.ok(a.duration_ms < TIMEOUT + 500, `${k}: an attempt is cut at CALLBACK_TIMEOUT_MS (${a.duration_ms} ms)`);
    };
    const failedAtOnce = (k: string, status: number) => {
      assert.equal(o[k]!.state, 'failed', `${k}: ${table.join('\n')}`);
      assert.deepEqual(o[k]!.attempts.map((a) => a.http_status), [status], `${k}: one attempt`);
      assert.equal(o[k]!.last_error, `rejected: HTTP ${status}`);
    };

    // undici's own headers timeout and the attempt's deadline are equal and race; whichever
    // fires, the attempt is recorded as `timeout` (and counted as class timeout in /metrics).
    failedAfterRetries('hanging', /^timeout$/);
    failedAfterRetries('dripHeaders', /^timeout$/);
    failedAfterRetries('tls', /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/);
    failedAfterRetries('tlsToPlain', /SSL|TLS|EPROTO|ECONNRESET/);
    failedAfterRetries('dns', /^(ENOTFOUND|EAI_AGAIN)$/);
    failedAfterRetries('refused', /^ECONNREFUSED$/);
    failedAfterRetries('reset', /ECONNRESET|UND_ERR_SOCKET|SocketError/);

    // A 2xx is delivered once its status line arrived; the body is read only up to a cap
    // and within the timeout, so neither a drip nor a flood holds the attempt.
    assert.equal(o.dripBody!.state, 'delivered');
    assert.deepEqual(o.dripBody!.attempts.map((a) => a.http_status), [200]);
    assert.ok(o.dripBody!.attempts[0]!.duration_ms < TIMEOUT + 500, `drip cut at the timeout (${o.dripBody!.attempts[0]!.duration_ms} ms)`);
    assert.equal(o.hugeBody!.state, 'delivered');
    assert.ok(o.hugeBody!.attempts[0]!.duration_ms < TIMEOUT, `a huge answer is not read to its end (${o.hugeBody!.attempts[0]!.duration_ms} ms)`);
    assert.ok(rx.hugeBody.bytesWritten < 16 * 1024 * 1024, `the receiver could push only ${rx.hugeBody.bytesWritten} bytes before the read was cut`);

    for (const [k, status] of [['r301', 301], ['r302', 302], ['r307', 307], ['r308', 308], ['gone', 410]] as const) failedAtOnce(k, status);
    assert.equal(target.calls.length, 0, 'redirects are not followed');

    // 429 / 503 with Retry-After: retried, not before the receiver asked (the backoff
    // alone would be ~10 ms here).
    for (const k of ['tooMany', 'unavailable']) {
      assert.equal(o[k]!.state, 'delivered', k);
      assert.deepEqual(o[k]!.attempts.map((a) => a.http_status), [k === 'tooMany' ? 429 : 503, 200]);
      const gap = o[k]!.attempts[1]!.at - o[k]!.attempts[0]!.at;
      assert.ok(gap >= 950, `${k}: Retry-After: 1 honoured (${gap} ms)`);
    }

    assert.ok(Math.max(...healthyLatency) < 10_000, `no hang: the healthy receiver was served (max ${Math.max(...healthyLatency)} ms; isolation itself is the per-host fairness test below)`);
  });

  it(
    'a dead receiver with a backlog does not starve the others (per-host fairness)',
    // Deliveries in flight are bounded per origin (CALLBACK_MAX_IN_FLIGHT_PER_ORIGIN).
    { timeout: 60_000 },
    async (t) => {
      // 2 threads x 8 = 16 deliveries in flight, at most 8 to one origin: 200 requests to a
      // receiver that never answers hold only the dead origin's 8.
      const TIMEOUT = 15_000;
      const s = await startApp(t, {
        WORKERS: '2',
        WORKER_CONCURRENCY: '8',
        CALLBACK_TIMEOUT_MS: String(TIMEOUT),
        CALLBACK_MAX_ATTEMPTS: '2',
        CALLBACK_RETRY_BASE_MS: '10',
        SHUTDOWN_TIMEOUT_MS: '500',
      });
      const dead = await hostile.hanging();
      t.after(() => dead.close());
      const healthy = await startReceiver();
      t.after(() => healthy.close());
      const deadIds: string[] = [];
      for (let i = 0; i < 200; i++) deadIds.push(await submit(s, dead.url));
      await waitFor(() => dead.hits >= 8, { timeoutMs: 10_000, what: 'the dead receiver holding deliveries' });
      const t0 = Date.now();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await submit(s, healthy.url()));
      const served = () => ids.filter((id) => healthy.callsFor(id).length > 0).length;
      await waitFor(() => served() === ids.length, { timeoutMs: 10_000, intervalMs: 10, what: 'healthy callbacks' });
      const waited = Date.now() - t0;
      t.diagnostic(`fairness: dead receiver hits=${dead.hits}; ${served()} of ${ids.length} healthy callbacks within ${waited} ms (callback timeout ${TIMEOUT} ms)`);
      // Ordering, not timing: every dead POST is still unanswered when the healthy ones are through.
      const deadAttempts = s.app.db.prepare('SELECT COUNT(*) FROM callback_attempts WHERE request_id IN (SELECT value FROM json_each(?))').pluck().get(JSON.stringify(deadIds));
      assert.equal(deadAttempts, 0, 'the healthy callbacks did not wait for the dead receiver\'s timeouts');
      assert.equal(dead.hits, 8, 'the dead origin holds exactly its bound');
    },
  );
});
