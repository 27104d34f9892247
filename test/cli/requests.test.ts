import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cli } from '../support/cli.ts';
import { startApp } from '../support/app.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';


describe('requests, replay, stats (CLI against the running service)', () => {
  it('shows what the API shows, replays a failed request with its recorded decision', async (t) => {
    let healthy = false;
    const rx = await startReceiver((_c, _n, res) => res.writeHead(healthy ? 200 : 410).end());
    t.after(rx.close);
    const { app, base, config } = await startApp(t, { CALLBACK_MAX_ATTEMPTS: '2' });
    const db = ['--db', config.dbPath];
    const res = await fetch(`${base}/api/v1/charging-session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ station_id: S1, driver_token: TOKEN, callback_url: rx.url() }),
    });
    const { request_id: id } = (await res.json()) as { request_id: string };
    await waitFor(async () => JSON.parse((await cli(['requests', 'show', id, '--json', ...db])).out).state === 'failed', { what: 'failed' });

    const shown = JSON.parse((await cli(['requests', 'show', id, '--json', ...db])).out);
    const api = (await app.server.inject({ url: `/api/v1/charging-session/${id}` })).result;
    assert.deepEqual(shown, JSON.parse(JSON.stringify(api)), 'CLI and API agree');
    const human = await cli(['requests', 'show', id, ...db]);
    assert.match(human.out, /state\s+failed/);
    assert.match(human.out, /#1 .* failed\s+410/);
    assert.ok(!human.out.includes(TOKEN));

    const list = JSON.parse((await cli(['requests', 'list', '--state', 'failed', '--json', ...db])).out);
    assert.deepEqual(list.map((r: { request_id: string }) => r.request_id), [id]);
    assert.equal((await cli(['requests', 'list', '--state', 'lost', ...db])).code, 2);
    assert.equal((await cli(['requests', 'list', '--limit', '0', ...db])).code, 2);
    assert.equal((await cli(['requests', 'show', '00000000-0000-4000-8000-000000000000', ...db])).code, 1);

    const st = JSON.parse((await cli(['stats', '--json', ...db])).out);
    assert.equal(st.states.failed, 1);
    assert.equal(st.decisions.not_allowed, 1);
    assert.equal(st.delivery.last_hour.requests_failed, 1);
    assert.match((await cli(['stats', ...db])).out, /failed\s+1/);

    // The replayed callback carries the recorded decision; the ACL is not asked again.
    healthy = true;
    assert.equal((await cli(['replay', '--failed', '--since', '2000-01-01T00:00:00Z', ...db])).out, 'replay: 1 re-queued\n');
    await waitFor(() => rx.calls.length === 2, { what: 'replayed callback' });
    assert.deepEqual(rx.calls[1]!.json, { station_id: S1, driver_token: TOKEN, status: 'not_allowed' });
    await waitFor(() => (app.db.prepare('SELECT state FROM charging_requests WHERE id = ?').pluck().get(id) as string) === 'delivered');
    const again = await cli(['replay', id, ...db]);
    assert.equal(again.code, 1, 'a delivered request is not replayed');
    assert.match(again.err, /only failed requests are replayed/);
    assert.equal((await cli(['replay', ...db])).code, 2);
    assert.equal((await cli(['replay', id, '--failed', ...db])).code, 2);
  });

  it('a replay gets a fresh round of CALLBACK_MAX_ATTEMPTS', async (t) => {
    const rx = await startReceiver((_c, _n, res) => res.writeHead(503).end());
    t.after(rx.close);
    const { base, config, app } = await startApp(t, { CALLBACK_MAX_ATTEMPTS: '2' });
    const res = await fetch(`${base}/api/v1/charging-session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ station_id: S1, driver_token: TOKEN, callback_url: rx.url() }),
    });
    const { request_id: id } = (await res.json()) as { request_id: string };
    const row = () => app.db.prepare('SELECT state, attempts, replays FROM charging_requests WHERE id = ?').get(id) as { state: string; attempts: number; replays: number };
    await waitFor(() => row().state === 'failed');
    assert.equal(row().attempts, 2);
    assert.equal((await cli(['replay', id, '--db', config.dbPath])).code, 0);
    await waitFor(() => row().state === 'failed' && row().attempts === 4, { what: 'second round' });
    assert.equal(row().replays, 1);
  });
});

describe('backup', () => {
  it('copies a consistent database while the service runs', async (t) => {
    const { config, base, dir } = await startApp(t);
    const res = await fetch(`${base}/api/v1/charging-session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ station_id: S1, driver_token: TOKEN, callback_url: 'http://127.0.0.1:9/cb' }),
    });
    const { request_id } = (await res.json()) as { request_id: string };
    const target = `${dir}/copy.db`;
    const r = await cli(['backup', target, '--db', config.dbPath]);
    assert.equal(r.code, 0, r.err);
    const Database = (await import('better-sqlite3')).default;
    const copy = new Database(target, { readonly: true });
    t.after(() => copy.close());
    assert.equal(copy.pragma('integrity_check', { simple: true }), 'ok');
    assert.equal(copy.prepare('SELECT id FROM charging_requests').pluck().get(), request_id);
  });
});
