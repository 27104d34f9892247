import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.ts';
import { ENGINES } from '../support/engines.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// The real app (HTTP, group commit, claims, worker threads deciding, callbacks) on every
// engine from one source: what a client sees must not depend on where the queue lives.

const STATION = '123e4567-e89b-12d3-a456-426614174000';
const OTHER_STATION = '9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab';
const ALLOWED = 'ABCD-efgh1234567890_~valid.token';
const SCOPED = 'scoped-token-0123456789ab';
const BLOCKED = 'blocked-token-0123456789';
const GROUPED = 'grouped-token-0123456789';
const UNKNOWN = 'unknown-token-0123456789';

async function post(base: string, body: object, key?: string): Promise<{ status: number; id: string }> {
  const res = await fetch(`${base}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, id: ((await res.json()) as { request_id: string }).request_id };
}

for (const engine of ENGINES) {
  describe(`the service on ${engine.name}`, { skip: engine.skip }, () => {
    it('decides from the ACL (token, group, station scope), delivers once each, and reads the request back', async (t) => {
      const rx = await startReceiver();
      t.after(rx.close);
      const data = await engine.appDatabase();
      await data.run("INSERT INTO acl_groups (name, blocked) VALUES ('fleet', 0)");
      await data.run('INSERT INTO acl (token, blocked) VALUES (?, 0)', ALLOWED);
      await data.run('INSERT INTO acl (token, blocked) VALUES (?, 1)', BLOCKED);
      await data.run("INSERT INTO acl (token, blocked, group_name) VALUES (?, 0, 'fleet')", GROUPED);
      await data.run('INSERT INTO acl (token, blocked) VALUES (?, 0)', SCOPED);
      await data.run('INSERT INTO acl_stations (token, station_id) VALUES (?, ?)', SCOPED, STATION);
      const { app, base } = await startApp(t, data.env);
      t.after(data.drop);
      const cases: Array<[string, string, string]> = [
        [ALLOWED, STATION, 'allowed'], [BLOCKED, STATION, 'not_allowed'], [GROUPED, STATION, 'allowed'],
        [SCOPED, STATION, 'allowed'], [SCOPED, OTHER_STATION, 'not_allowed'], [UNKNOWN, STATION, 'not_allowed'],
      ];
      const ids: string[] = [];
      for (const [token, station] of cases) {
        const r = await post(base, { station_id: station, driver_token: token, callback_url: rx.url() });
        assert.equal(r.status, 202);
        ids.push(r.id);
      }
      await waitFor(() => rx.calls.length >= cases.length, { what: 'every callback' });
      const byToken = new Map(rx.calls.map((c) => [`${c.json!.driver_token}@${c.json!.station_id}`, c.json!.status]));
      for (const [token, station, status] of cases) assert.equal(byToken.get(`${token}@${station}`), status, `${token} at ${station}`);
      await waitFor(async () => {
        const views = await Promise.all(ids.map(async (id) => (await (await fetch(`${base}/api/v1/charging-session/${id}`)).json()) as { state: string }));
        return views.every((v) => v.state === 'delivered');
      }, { what: 'every request delivered' });
      const rows = await data.run("SELECT COUNT(*) AS n FROM callback_attempts WHERE outcome = 'delivered'");
      assert.equal(Number(rows[0]!.n), cases.length, 'one delivered attempt each');
      const unknown = await data.run('SELECT seen_count FROM unknown_tokens');
      assert.equal(Number(unknown[0]?.seen_count), 1, 'the unknown token was recorded');
      assert.equal(rx.calls.length, cases.length, 'no duplicate callbacks');
      const health = (await (await fetch(`${base}/health`)).json()) as { status: string; components: { database: { status: string } } };
      assert.equal(health.components.database.status, 'UP');
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /chargegate_dead_letters 0/);
      await app.stop();
    });

    it('answers a repeated Idempotency-Key with the first request', async (t) => {
      const rx = await startReceiver();
      t.after(rx.close);
      const data = await engine.appDatabase();
      await data.run('INSERT INTO acl (token, blocked) VALUES (?, 0)', ALLOWED);
      const { app, base } = await startApp(t, data.env);
      t.after(data.drop);
      const body = { station_id: STATION, driver_token: ALLOWED, callback_url: rx.url() };
      const [a, b] = await Promise.all([post(base, body, 'k-1'), post(base, body, 'k-1')]);
      assert.equal(a.id, b.id);
      assert.equal((await post(base, body, 'k-1')).id, a.id);
      await waitFor(() => rx.calls.length >= 1, { what: 'the callback' });
      await app.stop();
      assert.equal(rx.calls.length, 1);
    });
  });
}
