import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';

type Inject = Awaited<ReturnType<typeof startApp>>['app']['server']['inject'];

function poster(inject: Inject) {
  return (body: object, headers: Record<string, string> = {}) =>
    inject({ method: 'POST', url: '/api/v1/charging-session', payload: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
}

const countRows = (app: Awaited<ReturnType<typeof startApp>>['app']) =>
  (app.db.prepare('SELECT COUNT(*) AS n FROM charging_requests').get() as { n: number }).n;

describe('GET /api/v1/charging-session/{id}', () => {
  it('shows state, decision, attempts and timestamps with the token masked', async (t) => {
    const rx = await startReceiver((_c, n, res) => res.writeHead(n === 1 ? 503 : 200).end());
    t.after(rx.close);
    const { app } = await startApp(t);
    const post = poster(app.server.inject.bind(app.server));
    const res = await post({ station_id: S1, driver_token: TOKEN, callback_url: rx.url() });
    const { request_id } = res.result as { request_id: string };
    const first = await app.server.inject({ url: `/api/v1/charging-session/${request_id}` });
    assert.equal(first.statusCode, 200);
    await waitFor(async () => ((await app.server.inject({ url: `/api/v1/charging-session/${request_id}` })).result as { state: string }).state === 'delivered');
    const view = (await app.server.inject({ url: `/api/v1/charging-session/${request_id.toUpperCase()}` })).result as Record<string, any>;
    assert.equal(view.request_id, request_id);
    assert.equal(view.driver_token, 'ABCD…oken');
    assert.ok(!JSON.stringify(view).includes(TOKEN), 'the full token never leaves through a read');
    assert.equal(view.station_id, S1);
    assert.deepEqual({ ...view.decision, latency_ms: 0, decided_at: 0 }, { status: 'not_allowed', reason: 'unknown_token', source: 'local_list', latency_ms: 0, decided_at: 0 });
    assert.equal(view.delivery.attempts, 2);
    assert.deepEqual(view.attempts.map((a: { http_status: number; outcome: string }) => [a.http_status, a.outcome]), [[503, 'retry'], [200, 'delivered']]);
    assert.match(view.created_at, /^\d{4}-\d\d-\d\dT/);
    assert.match(view.delivery.finished_at, /^\d{4}-\d\d-\d\dT/);
  });

  it('404 for an unknown id, 400 for a malformed one, in the error shape', async (t) => {
    const { app } = await startApp(t);
    const missing = await app.server.inject({ url: '/api/v1/charging-session/00000000-0000-4000-8000-000000000000' });
    assert.equal(missing.statusCode, 404);
    assert.equal((missing.result as { status: string }).status, 'not_found');
    const bad = await app.server.inject({ url: '/api/v1/charging-session/not-a-uuid' });
    assert.equal(bad.statusCode, 400);
    assert.deepEqual((bad.result as { errors: unknown[] }).errors, [{ field: 'request_id', message: 'must be a UUID' }]);
  });
});

describe('Idempotency-Key', () => {
  it('a repeat gets the first answer and enqueues nothing; another body gets 422', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const { app } = await startApp(t);
    const post = poster(app.server.inject.bind(app.server));
    const body = { station_id: S1, driver_token: TOKEN, callback_url: rx.url() };
    const a = await post(body, { 'idempotency-key': 'order-42' });
    const b = await post(body, { 'idempotency-key': 'order-42' });
    assert.equal(a.statusCode, 202);
    assert.equal(b.statusCode, 202);
    assert.deepEqual(b.result, a.result);
    assert.equal(b.headers.location, a.headers.location);
    assert.equal(b.headers['idempotent-replayed'], 'true');
    assert.equal(countRows(app), 1);
    const c = await post({ ...body, station_id: '9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab' }, { 'idempotency-key': 'order-42' });
    assert.equal(c.statusCode, 422);
    assert.equal((c.result as { status: string }).status, 'invalid');
    assert.equal(countRows(app), 1);
    const d = await post(body, { 'idempotency-key': 'order-43' });
    assert.notEqual((d.result as { request_id: string }).request_id, (a.result as { request_id: string }).request_id);
    assert.equal(countRows(app), 2);
  });

  it('concurrent duplicates create one row', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const { app } = await startApp(t);
    const post = poster(app.server.inject.bind(app.server));
    const body = { station_id: S1, driver_token: TOKEN, callback_url: rx.url() };
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(body, { 'idempotency-key': 'burst' })));
    assert.ok(answers.every((r) => r.statusCode === 202));
    assert.equal(new Set(answers.map((r) => (r.result as { request_id: string }).request_id)).size, 1);
    assert.equal(countRows(app), 1);
  });

  it('a malformed key is a 400 naming the header', async (t) => {
    const { app } = await startApp(t);
    const post = poster(app.server.inject.bind(app.server));
    const body = { station_id: S1, driver_token: TOKEN, callback_url: 'http://127.0.0.1:9/cb' };
    for (const key of ['x'.repeat(256), 'tab\there', 'ünïcode']) {
      const r = await post(body, { 'idempotency-key': key });
      assert.equal(r.statusCode, 400, key);
      assert.deepEqual((r.result as { errors: Array<{ field: string }> }).errors.map((e) => e.field), ['Idempotency-Key']);
    }
    assert.equal(countRows(app), 0);
  });
});

describe('health and metrics', () => {
  it('/health reports components; live and ready answer', async (t) => {
    const { app } = await startApp(t, { WORKERS: '2' });
    const h = await app.server.inject({ url: '/health' });
    assert.equal(h.statusCode, 200);
    const body = h.result as { status: string; components: Record<string, { status: string }> };
    assert.equal(body.status, 'UP');
    assert.deepEqual(Object.keys(body.components).sort(), ['callbacks', 'database', 'queue', 'workers']);
    assert.equal((await app.server.inject({ url: '/health/live' })).statusCode, 200);
    assert.equal((await app.server.inject({ url: '/health/ready' })).statusCode, 200);
  });

  it('/health is DOWN (503) when the database cannot be written', async (t) => {
    const { app, config } = await startApp(t);
    const Database = (await import('better-sqlite3')).default;
    const admin = new Database(config.dbPath);
    t.after(() => admin.close());
    admin.exec('BEGIN IMMEDIATE'); // an admin holding the write lock
    const h = await app.server.inject({ url: '/health' });
    assert.equal(h.statusCode, 503);
    const body = h.result as { status: string; components: { database: { status: string } } };
    assert.equal(body.components.database.status, 'DOWN');
    const post = poster(app.server.inject.bind(app.server));
    const r = await post({ station_id: S1, driver_token: TOKEN, callback_url: 'http://127.0.0.1:9/cb' });
    assert.equal(r.statusCode, 503);
    assert.ok(Number(r.headers['retry-after']) > 0);
    admin.exec('COMMIT');
    assert.equal((await app.server.inject({ url: '/health' })).statusCode, 200, 'recovers when the lock is gone');
  });

  it('/health is DEGRADED near the queue bound', async (t) => {
    const rx = await startReceiver(() => undefined); // never answers: rows stay open
    t.after(rx.close);
    const { app } = await startApp(t, { QUEUE_MAX_SIZE: '2', CALLBACK_TIMEOUT_MS: '60000' });
    const post = poster(app.server.inject.bind(app.server));
    for (let i = 0; i < 2; i++) await post({ station_id: S1, driver_token: TOKEN, callback_url: rx.url() });
    const h = await app.server.inject({ url: '/health' });
    assert.equal(h.statusCode, 200);
    assert.equal((h.result as { status: string }).status, 'DEGRADED');
  });

  it('/metrics exposes the SPEC series with bounded labels', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const { app } = await startApp(t);
    const post = poster(app.server.inject.bind(app.server));
    const ok = await post({ station_id: S1, driver_token: TOKEN, callback_url: rx.url() });
    await post({ station_id: 'nope' });
    await waitFor(() => rx.calls.length === 1);
    const id = (ok.result as { request_id: string }).request_id;
    await waitFor(async () => /chargegate_callback_attempts_total\{result="delivered",class="2xx"\} 1/.test(String((await app.server.inject({ url: '/metrics' })).payload)));
    const m = await app.server.inject({ url: '/metrics' });
    assert.equal(m.statusCode, 200);
    assert.match(String(m.headers['content-type']), /^text\/plain/);
    const text = m.payload;
    for (const re of [
      /chargegate_requests_total\{outcome="accepted"\} 1/,
      /chargegate_requests_total\{outcome="invalid"\} 1/,
      /chargegate_queue_depth \d+/,
      /chargegate_queue_oldest_age_seconds \d/,
      /chargegate_decisions_total\{status="not_allowed",source="local_list"\} 1/,
      /chargegate_decision_latency_seconds_bucket\{le="\+Inf"\} 1/,
      /chargegate_callback_latency_seconds_count 1/,
      /chargegate_dead_letters 0/,
      /chargegate_worker_utilization /,
      /chargegate_nodejs_eventloop_lag_seconds /,
      /chargegate_db_commit_seconds_count \d+/,
    ]) {
      assert.match(text, re);
    }
    assert.ok(!text.includes(id) && !text.includes(TOKEN) && !text.includes(S1), 'no ids, tokens or stations as labels');
  });
});

describe('authorizer breaker in health and metrics', () => {
  it('reports the open breaker as DEGRADED and as a gauge', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    // Nothing listens on the upstream port: every call fails fast.
    const dead = await startReceiver();
    const upstream = dead.url('/authorize');
    await dead.close();
    const { app } = await startApp(t, { AUTHORIZER_URL: upstream, AUTHORIZER_BREAKER_FAILURES: '1', AUTHORIZER_BREAKER_OPEN_MS: '600000' });
    const before = (await app.server.inject({ url: '/health' })).result as { components: { authorizer: { status: string; breaker: string } } };
    assert.deepEqual([before.components.authorizer.status, before.components.authorizer.breaker], ['UP', 'closed']);
    const post = poster(app.server.inject.bind(app.server));
    await post({ station_id: S1, driver_token: 'unlisted-token-0123456789', callback_url: rx.url() });
    await waitFor(() => rx.calls.length === 1, { what: 'offline decision delivered' });
    const h = await app.server.inject({ url: '/health' });
    const body = h.result as { status: string; components: { authorizer: { status: string; breaker: string; opened: number } } };
    assert.equal(h.statusCode, 200);
    assert.equal(body.status, 'DEGRADED');
    assert.deepEqual([body.components.authorizer.status, body.components.authorizer.breaker, body.components.authorizer.opened], ['DEGRADED', 'open', 1]);
    assert.match((await app.server.inject({ url: '/metrics' })).payload, /chargegate_authorizer_breaker_open 1/);
  });
});

describe('wrong method on a known path', () => {
  it('is 405 with Allow in the error shape, and writes nothing', async (t) => {
    const { app } = await startApp(t);
    for (const [method, url, allow] of [
      ['PUT', '/api/v1/charging-session', 'POST'],
      ['GET', '/api/v1/charging-session', 'POST'],
      ['DELETE', '/api/v1/charging-session', 'POST'],
      ['DELETE', '/api/v1/charging-session/00000000-0000-4000-8000-000000000000', 'GET, HEAD'],
      ['POST', '/health', 'GET, HEAD'],
    ] as const) {
      const res = await app.server.inject({ method, url, payload: method === 'GET' ? undefined : '{}', headers: { 'content-type': 'application/json' } });
      assert.equal(res.statusCode, 405, `${method} ${url}`);
      assert.equal(res.headers.allow, allow, `${method} ${url}`);
      const body = res.result as { status: string; message: string; errors: unknown[] };
      assert.equal(body.status, 'invalid');
      assert.match(body.message, new RegExp(`${method} is not allowed`));
      assert.deepEqual(body.errors, []);
    }
    assert.equal(countRows(app), 0);
    assert.equal((await app.server.inject({ url: '/api/v1/nothing-here' })).statusCode, 404, 'unknown paths stay 404');
  });
});
