import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { createApp } from '../../src/app.ts';
import { aclAdd } from '../../src/cli/acl.ts';
import { loadConfig } from '../../src/config.ts';
import { openDb } from '../../src/queue/db.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { createStore } from '../../src/queue/store.ts';
import { captureLog, startApp } from '../support/app.ts';
import { startReceiver } from '../support/receiver.ts';
import { ENGINES, type Engine } from '../support/engines.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const S2 = '9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab';
const ALLOWED = 'ABCD-efgh1234567890_~valid.token';
const BLOCKED = 'blocked-token-0123456789';

function admin(path: string) {
  const db = openDb(path, { busyTimeoutMs: 5000 });
  migrate(db);
  return db;
}

const entry = (token: string, extra: object = {}) => ({ token, stations: [], expires_at: null, blocked: false, note: null, ...extra });

async function post(base: string, body: object): Promise<string> {
  const res = await fetch(`${base}/api/v1/charging-session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 202);
  return ((await res.json()) as { request_id: string }).request_id;
}

/** The app on an engine's fresh database, with raw SQL on that database. */
async function appOn(t: TestContext, engine: Engine, env: Record<string, string> = {}) {
  const data = await engine.appDatabase();
  const started = await startApp(t, { ...data.env, ...env });
  t.after(data.drop);
  const row = async (id: string) => (await data.run('SELECT * FROM charging_requests WHERE id = ?', id))[0] as Record<string, unknown>;
  const attempts = (id: string) => data.run('SELECT attempt, http_status, error, outcome FROM callback_attempts WHERE request_id = ? ORDER BY attempt', id);
  return { ...started, data, row, attempts };
}

function row(path: string, id: string) {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT * FROM charging_requests WHERE id = ?').get(id) as Record<string, unknown>;
  } finally {
    db.close();
  }
}

function attempts(path: string, id: string) {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT attempt, http_status, error, outcome FROM callback_attempts WHERE request_id = ? ORDER BY attempt').all(id) as Array<Record<string, unknown>>;
  } finally {
    db.close();
  }
}

for (const engine of ENGINES) {
  describe(`pipeline in one process on ${engine.name}`, { skip: engine.skip }, () => {
    it('at a trickle every request goes from accept to decision to delivery in memory: finished work runs no claims', async (t) => {
      const rx = await startReceiver();
      t.after(rx.close);
      const { app, base, data } = await appOn(t, engine);
      await data.run('INSERT INTO acl (token, blocked) VALUES (?, 0)', ALLOWED);
      let claims = 0;
      const claim = app.queue.claim.bind(app.queue);
      app.queue.claim = (req) => {
        claims++;
        return claim(req);
      };
      const N = 30;
      for (let i = 0; i < N; i++) {
        const id = await post(base, { station_id: S1, driver_token: ALLOWED, callback_url: rx.url() });
        await waitFor(() => rx.callsFor(id).length === 1, { what: `callback ${i}` });
      }
      // A claim per finished decision and delivery would be 2 per request; what remains is
      // the poll timer's look every second (src/dispatch/claims.ts).
      assert.ok(claims < N / 2, `${claims} claims for ${N} requests`);
    });

    it('decides allowed / not_allowed / invalid and POSTs exactly the SPEC body, decision persisted first', async (t) => {
      const rx = await startReceiver();
      t.after(rx.close);
      const { base, raw, data, row } = await appOn(t, engine);
      await data.run('INSERT INTO acl (token, blocked) VALUES (?, 0)', ALLOWED);
      await data.run('INSERT INTO acl (token, blocked) VALUES (?, 1)', BLOCKED);

      // The receiver checks the row the moment the callback arrives.
      const seenDecision = new Map<string, unknown>();
      const rx2 = await startReceiver(async (call, _n, res) => {
        const id = String(call.headers['webhook-id']);
        seenDecision.set(id, (await row(id)).decision_status);
        res.writeHead(200).end();
      });
      t.after(rx2.close);

      const a = await post(base, { station_id: S1, driver_token: ALLOWED, callback_url: rx2.url() });
      const b = await post(base, { station_id: S1, driver_token: BLOCKED, callback_url: rx.url() });
      const c = await post(base, { station_id: S1, driver_token: 'unknown-token-0123456789', callback_url: rx.url() });
      // The receiver records a call before its handler has read the row: wait for both.
      await waitFor(() => rx.calls.length === 2 && seenDecision.has(a), { what: 'three callbacks, the first one checked' });

      assert.equal(rx2.calls[0]!.body, JSON.stringify({ station_id: S1, driver_token: ALLOWED, status: 'allowed' }));
      assert.equal(seenDecision.get(a), 'allowed', 'decision was persisted before the callback was sent');
      assert.deepEqual(rx.callsFor(b)[0]!.json, { station_id: S1, driver_token: BLOCKED, status: 'not_allowed' });
      assert.deepEqual(rx.callsFor(c)[0]!.json, { station_id: S1, driver_token: 'unknown-token-0123456789', status: 'not_allowed' });
      assert.equal((await row(b)).decision_reason, 'blocked');
      assert.equal((await row(c)).decision_reason, 'unknown_token');

      // Once a station is registered, others are invalid for this site.
      await data.run('INSERT INTO stations (station_id) VALUES (?)', S2);
      const d = await post(base, { station_id: S1, driver_token: ALLOWED, callback_url: rx.url() });
      await waitFor(() => rx.callsFor(d).length === 1, { what: 'invalid callback' });
      assert.equal(rx.callsFor(d)[0]!.json!.status, 'invalid');

      await waitFor(async () => (await row(d)).state === 'delivered');
      const delivered = await row(a);
      assert.equal(delivered.state, 'delivered');
      assert.equal(delivered.driver_token, null, 'full token dropped after final delivery');
      assert.equal(delivered.decision_source, 'local_list');
      assert.equal(typeof delivered.decision_latency_ms, 'number');

      // Every accept, decision and delivery is logged with request_id; never the full token.
      // The row reads 'delivered' once its commit is visible; the line follows when that
      // commit's WAL fsync has settled it (src/queue/committer.ts), a moment later.
      const logged = (id: string) => {
        const msgs = raw.filter((l) => l.includes(id)).map((l) => JSON.parse(l).msg);
        return msgs.includes('accepted') && msgs.includes('decided') && msgs.includes('delivered');
      };
      await waitFor(() => [a, b, c, d].every(logged), { what: 'accepted, decided and delivered logged for each request' });
      assert.ok(!raw.some((l) => l.includes(ALLOWED) || l.includes(BLOCKED)), 'no full token in any log line');
    });

    it('retries 500, 500 then delivers on 200 with 3 recorded attempts; 400 fails at once', async (t) => {
      const flaky = await startReceiver((_c, n, res) => res.writeHead(n <= 2 ? 500 : 200).end());
      const reject = await startReceiver((_c, _n, res) => res.writeHead(400).end());
      t.after(flaky.close);
      t.after(reject.close);
      const { base, row, attempts } = await appOn(t, engine);
      const ok = await post(base, { station_id: S1, driver_token: ALLOWED, callback_url: flaky.url() });
      const bad = await post(base, { station_id: S1, driver_token: ALLOWED, callback_url: reject.url() });
      await waitFor(async () => (await row(ok)).state === 'delivered' && (await row(bad)).state === 'failed', { what: 'final states' });
      assert.deepEqual((await attempts(ok)).map((a) => [a.attempt, a.http_status, a.outcome]), [
        [1, 500, 'retry'],
        [2, 500, 'retry'],
        [3, 200, 'delivered'],
      ]);
      assert.deepEqual((await attempts(bad)).map((a) => [a.attempt, a.http_status, a.outcome]), [[1, 400, 'failed']]);
      assert.equal((await row(bad)).last_error, 'rejected: HTTP 400');
      assert.equal((await row(bad)).driver_token, ALLOWED, 'a failed request keeps its token for replay');
      assert.equal(new Set(flaky.calls.map((c) => c.headers['webhook-id'])).size, 1, 'webhook-id stable across retries');
    });

    it('gives up after CALLBACK_MAX_ATTEMPTS and honours Retry-After', async (t) => {
      const down = await startReceiver((_c, _n, res) => res.writeHead(503).end());
      const busy = await startReceiver((_c, n, res) => (n === 1 ? res.writeHead(429, { 'retry-after': '1' }).end() : res.writeHead(200).end()));
      t.after(down.close);
      t.after(busy.close);
      const { base, row, attempts } = await appOn(t, engine, { CALLBACK_MAX_ATTEMPTS: '3' });
      const dead = await post(base, { station_id: S1, driver_token: ALLOWED, callback_url: down.url() });
      const slow = await post(base, { station_id: S1, driver_token: ALLOWED, callback_url: busy.url() });
      await waitFor(async () => (await row(dead)).state === 'failed', { what: 'dead letter' });
      assert.equal((await attempts(dead)).length, 3);
      assert.match(String((await row(dead)).last_error), /^max_attempts/);
      await waitFor(async () => (await row(slow)).state === 'delivered', { what: 'delivery after 429' });
      assert.ok(busy.calls[1]!.at - busy.calls[0]!.at >= 1000, 'second attempt waited for Retry-After');
    });

    it('graceful stop releases in-flight leases so a restart resumes at once', async (t) => {
      const hang = await startReceiver(() => undefined);
      t.after(hang.close);
      const { app, base, row } = await appOn(t, engine, { SHUTDOWN_TIMEOUT_MS: '100', CALLBACK_TIMEOUT_MS: '60000' });
      const id = await post(base, { station_id: S1, driver_token: ALLOWED, callback_url: hang.url() });
      await waitFor(() => hang.calls.length === 1, { what: 'callback in flight' });
      const t0 = Date.now();
      await app.stop();
      const r = await row(id);
      assert.equal(r.state, 'delivering');
      assert.equal(r.locked_at, null);
      assert.ok((r.due_at as number) <= Date.now(), 'due again at once');
      assert.ok(Date.now() - t0 < 10_000, 'stop is bounded');
    });
  });
}

// On PostgreSQL a dead instance's leases are taken over while others run: test/queue/queue.test.ts.
describe('crash recovery on sqlite', () => {
  it('resumes rows left claimed by a dead process, re-deciding only the undecided', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const dir = tempDir(t);
    const path = join(dir, 'cg.db');
    const db = admin(path);
    aclAdd(db, entry(ALLOWED));
    const store = createStore(db);
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids) {
      store.insert({ id, station_id: S1, driver_token: ALLOWED, token_hash: 'h', token_mask: 'm', callback_url: rx.url(), created_at: 1 });
    }
    // A previous process claimed both long ago and decided the second one `not_allowed`.
    const past = Date.now() - 10 * 60_000;
    const claims = store.claimUndecided(past, 2, 1000);
    const second = claims.find((c) => c.id === ids[1])!;
    store.recordDecision({ id: ids[1]!, status: 'not_allowed', reason: 'blocked', source: 'local_list', latency_ms: 1 }, { id: second.id, claim: second.claim_count }, true, past);
    db.close();

    const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', DB_PATH: path, WORKERS: '1' });
    const app = await createApp({ config, log: captureLog().log });
    await app.start();
    t.after(() => app.stop());
    await waitFor(() => rx.calls.length === 2, { what: 'resumed deliveries' });
    assert.equal(rx.callsFor(ids[0]!)[0]!.json!.status, 'allowed');
    assert.equal(rx.callsFor(ids[1]!)[0]!.json!.status, 'not_allowed', 'recorded decision is not re-evaluated');
  });
});
