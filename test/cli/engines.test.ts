import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { App } from '../../src/app.ts';
import { cli } from '../support/cli.ts';
import { startApp } from '../support/app.ts';
import { ENGINES, type AppDatabase } from '../support/engines.ts';
import { freePort } from '../support/port.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// The inspection and operations commands (requests, replay, stats, receivers, keys, acl
// unknown) on every engine from one source, beside the running service: the same commands,
// flags and answers whether the data lives in the SQLite file or in PostgreSQL (issue 12).

const STATION = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';

/** The flag that names the engine's database, as an admin would type it. */
function dbFlag(data: AppDatabase): string[] {
  return data.env.DATABASE_URL !== undefined ? ['--database-url', data.env.DATABASE_URL] : ['--db', data.env.DB_PATH!];
}

async function post(app: App, opts: { callback: string; key?: string }) {
  return app.server.inject({
    method: 'POST',
    url: '/api/v1/charging-session',
    headers: { 'content-type': 'application/json', ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}) },
    payload: JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: opts.callback }),
  });
}

for (const engine of ENGINES) {
  describe(`admin commands on ${engine.name}`, { skip: engine.skip }, () => {
    it('show (= the API), list, stats, receivers, unknown of a failed request; replay delivers it', async (t) => {
      let healthy = false;
      const rx = await startReceiver((_c, _n, res) => res.writeHead(healthy ? 200 : 410).end());
      t.after(rx.close);
      const data = await engine.appDatabase();
      const { app } = await startApp(t, { ...data.env, CALLBACK_MAX_ATTEMPTS: '2' });
      t.after(data.drop);
      const db = dbFlag(data);
      const res = await post(app, { callback: rx.url() });
      assert.equal(res.statusCode, 202);
      const id = JSON.parse(res.payload).request_id as string;
      await waitFor(async () => JSON.parse((await cli(['requests', 'show', id, '--json', ...db])).out).state === 'failed', { what: 'failed' });

      const shown = await cli(['requests', 'show', id, '--json', ...db]);
      const api = (await app.server.inject({ url: `/api/v1/charging-session/${id}` })).result;
      assert.deepEqual(JSON.parse(shown.out), JSON.parse(JSON.stringify(api)), 'CLI and API agree');
      const human = await cli(['requests', 'show', id.toUpperCase(), ...db]);
      assert.match(human.out, /state\s+failed/);
      assert.match(human.out, /#1 .* failed\s+410/);

      const list = JSON.parse((await cli(['requests', 'list', '--state', 'failed', '--json', ...db])).out);
      assert.deepEqual(list.map((r: { request_id: string; driver_token: string }) => [r.request_id, r.driver_token]), [[id, 'ABCD…oken']]);
      assert.equal((await cli(['requests', 'list', '--state', 'lost', ...db])).code, 2);

      const st = JSON.parse((await cli(['stats', '--json', ...db])).out);
      assert.deepEqual(st.states, { queued: 0, authorizing: 0, delivering: 0, delivered: 0, failed: 1 });
      assert.equal(st.decisions.not_allowed, 1);
      assert.deepEqual(st.delivery.last_hour, { attempts: 1, delivered: 0, success_rate: 0, requests_delivered: 0, requests_failed: 1 });

      const rcv = JSON.parse((await cli(['receivers', '--json', ...db])).out);
      assert.equal(rcv.length, 1);
      assert.deepEqual([rcv[0].origin, rcv[0].last_status, rcv[0].consecutive_failures, rcv[0].queued], [new URL(rx.url()).origin, '410', 1, 0]);

      const unknown = JSON.parse((await cli(['acl', 'unknown', '--json', ...db])).out);
      assert.deepEqual(unknown.map((u: { token: string; station_id: string; count: number }) => [u.token, u.station_id, u.count]), [['ABCD…oken', STATION, 1]]);
      for (const args of [['requests', 'list'], ['requests', 'show', id], ['acl', 'unknown'], ['receivers']]) {
        assert.ok(!(await cli([...args, ...db])).out.includes(TOKEN), `${args.join(' ')} masks the token`);
      }

      // The running service claims the replayed request and delivers the recorded decision.
      healthy = true;
      const replayed = await cli(['replay', '--failed', ...db]);
      assert.equal(replayed.out, 'replay: 1 re-queued\n', replayed.err);
      await waitFor(() => rx.calls.length === 2, { what: 'replayed callback' });
      assert.deepEqual(rx.calls[1]!.json, { station_id: STATION, driver_token: TOKEN, status: 'not_allowed' });
      await waitFor(async () => JSON.parse((await cli(['requests', 'show', id, '--json', ...db])).out).state === 'delivered', { what: 'delivered' });
      const again = await cli(['replay', id, ...db]);
      assert.equal(again.code, 1, 'a delivered request is not replayed');
      assert.match(again.err, /state is delivered, only failed requests are replayed/);
      const missing = await cli(['replay', '00000000-0000-4000-8000-000000000000', ...db]);
      assert.equal(missing.code, 1);
      assert.match(missing.err, /no such request/);
      assert.equal((await cli(['acl', 'unknown', '--clear', ...db])).out, 'acl: forgot 1 unknown-token sighting(s)\n');
      assert.deepEqual(JSON.parse((await cli(['acl', 'unknown', '--json', ...db])).out), []);
      assert.equal(rx.calls.length, 2, 'delivered once after the replay');
    });

    it('keys add: the running service takes the key; keys revoke: it refuses it', async (t) => {
      const rx = await startReceiver();
      t.after(rx.close);
      const data = await engine.appDatabase();
      const { app } = await startApp(t, data.env);
      t.after(data.drop);
      // The engine named by the environment, as serve reads it (DATABASE_URL or DB_PATH).
      const env = data.env;
      assert.equal((await post(app, { callback: rx.url() })).statusCode, 202, 'open while no key exists');
      const add = await cli(['keys', 'add', 'site-a'], env);
      assert.equal(add.code, 0, add.err);
      const key = add.out.trim();
      assert.match(key, /^cg_[A-Za-z0-9_-]{43}$/);
      assert.equal((await cli(['keys', 'add', 'site-a'], env)).code, 1, 'a name is issued once');
      // A second client, so that keys stay required once site-a's is revoked.
      const other = (await cli(['keys', 'add', 'site-b'], env)).out.trim();
      await waitFor(async () => (await post(app, { callback: rx.url() })).statusCode === 401, { what: 'keys required' });
      assert.equal((await post(app, { callback: rx.url(), key })).statusCode, 202);
      const list = await cli(['keys', 'list', '--json'], env);
      assert.deepEqual(JSON.parse(list.out).map((r: { name: string }) => r.name), ['site-a', 'site-b']);
      assert.ok(!list.out.includes(key.slice(3, 20)), 'the key is never shown again');

      assert.equal((await cli(['keys', 'revoke', 'site-a'], env)).out, 'keys: site-a revoked\n');
      await waitFor(async () => (await post(app, { callback: rx.url(), key })).statusCode === 401, { what: 'the revoked key refused' });
      assert.equal((await post(app, { callback: rx.url(), key: other })).statusCode, 202, "the other client's key still works");
      const none = await cli(['keys', 'revoke', 'site-a'], env);
      assert.equal(none.code, 1);
      assert.match(none.err, /no key for site-a/);
    });
  });
}
