import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { App } from '../../src/app.ts';
import { cli } from '../support/cli.ts';
import { startApp } from '../support/app.ts';
import { ENGINES, type AppDatabase } from '../support/engines.ts';
import { freePort } from '../support/port.ts';
import { startReceiver } from '../support/receiver.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

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

const R1 = '018f0000-0000-7000-8000-000000000001';
const R2 = '018f0000-0000-7000-8000-000000000002';
const R3 = '018f0000-0000-7000-8000-000000000003';
const R4 = '018f0000-0000-7000-8000-000000000004';

/** The same rows in either engine: finished, failed, waiting and retried requests, receivers, keys, unknown tokens. */
async function seed(data: AppDatabase, now: number): Promise<void> {
  const req = `INSERT INTO charging_requests (id, station_id, driver_token, token_hash, token_mask, callback_url, origin, state, created_at,
    updated_at, due_at, attempts, decision_status, decision_reason, decision_source, decision_latency_ms, decided_at, finished_at,
    last_error, token_type, client) VALUES (?, ?, ?, 'h', 'ABCD…oken', ?, ?, ?, ?, ?, ?, ?, ?, ?, 'acl', 3, ?, ?, ?, ?, ?)`;
  const A = 'http://a.example:8080';
  const B = 'https://b.example';
  await data.run(req, R1, STATION, null, `${A}/cb`, A, 'delivered', now - 600_000, now - 590_000, now - 590_000, 1, 'allowed', 'acl',
    now - 599_000, now - 590_000, null, 'RFID', null);
  await data.run(req, R2, STATION, TOKEN, `${B}/cb?x=1`, B, 'failed', now - 500_000, now - 490_000, now - 490_000, 2, 'not_allowed',
    'unknown_token', now - 499_000, now - 490_000, 'HTTP 410', 'APP_USER', 'site-a');
  // Created at the same ms as R2: the id breaks the tie, in the same order on both engines.
  await data.run(req, R3, STATION, TOKEN, `${B}/cb`, B, 'failed', now - 500_000, now - 480_000, now - 480_000, 1, 'allowed', 'acl',
    now - 499_000, now - 480_000, 'timeout', 'RFID', null);
  await data.run(req, R4, STATION, TOKEN, `${A}/cb`, A, 'delivering', now - 100_000, now - 50_000, now + 60_000, 1, 'unknown', 'timeout',
    now - 99_000, null, 'HTTP 503', 'RFID', null);
  const att = 'INSERT INTO callback_attempts (request_id, attempt, started_at, duration_ms, http_status, error, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)';
  await data.run(att, R1, 1, now - 591_000, 12, 200, null, 'delivered');
  await data.run(att, R2, 1, now - 495_000, 30, 503, null, 'retry');
  await data.run(att, R2, 2, now - 491_000, 31, 410, null, 'failed');
  await data.run(att, R3, 1, now - 481_000, 10_000, null, 'timeout', 'failed');
  await data.run(att, R4, 1, now - 51_000, 20, 503, null, 'retry');
  const origin = `INSERT INTO callback_origins (origin, attempts, delivered, consecutive_failures, last_status, last_attempt_at, last_delivered_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)`;
  await data.run(origin, A, 2, 1, 1, '503', now - 51_000, now - 591_000);
  await data.run(origin, B, 3, 0, 3, 'timeout', now - 481_000, null);
  await data.run(origin, 'http://idle.example', 5, 5, 0, '200', now - 86_400_000 * 3, now - 86_400_000 * 3);
  // Names whose order differs between byte order and a locale's (punctuation).
  for (const [i, name] of ['site-b', 'site.c', 'site_d', 'site-a', 'sitea'].entries()) {
    await data.run('INSERT INTO api_keys (name, key_hash, created_at, expires_at, last_used_at) VALUES (?, ?, ?, ?, ?)',
      name, `hash${i}`, now - 1000 * i, i === 1 ? now + 86_400_000 : null, i === 0 ? now - 60_000 : null);
  }
  const unk = `INSERT INTO unknown_tokens (token_hash, station_id, token_mask, seen_count, first_seen_at, last_seen_at, last_status, last_reason,
    last_request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;
  await data.run(unk, 'aa11', STATION, 'unkn…0001', 3, now - 700_000, now - 10_000, 'not_allowed', 'unknown_token', R2);
  await data.run(unk, 'bb22', STATION, 'unkn…0002', 1, now - 10_000, now - 10_000, 'unknown', 'upstream_unreachable', R3);
}

const READS = [
  ['requests', 'list'], ['requests', 'list', '--json'], ['requests', 'list', '--state', 'failed', '--limit', '1', '--json'],
  ['requests', 'show', R2], ['requests', 'show', R2, '--json'], ['requests', 'show', R1, '--json'], ['requests', 'show', R4],
  ['receivers'], ['receivers', '--all', '--json'], ['keys', 'list'], ['keys', 'list', '--json'],
  ['acl', 'unknown'], ['acl', 'unknown', '--json'], ['acl', 'unknown', '--station', STATION.toUpperCase(), '--limit', '1', '--json'],
];

const pg = ENGINES.find((e) => e.name === 'postgres')!;

describe('the same data reads the same on both engines', { skip: pg.skip }, () => {
  it('requests, receivers, keys, acl unknown and stats print the same, human and --json', async (t) => {
    const now = Date.now();
    const outputs: Array<Map<string, string>> = [];
    for (const engine of ENGINES) {
      const data = await engine.appDatabase();
      t.after(data.drop);
      await seed(data, now);
      const seen = new Map<string, string>();
      for (const args of READS) {
        const r = await cli([...args, ...dbFlag(data)]);
        assert.equal(r.code, 0, `${engine.name}: ${args.join(' ')}: ${r.err}`);
        seen.set(args.join(' '), r.out);
      }
      // The oldest pending age moves with the clock between the two runs: compared apart.
      const before = Date.now();
      const st = JSON.parse((await cli(['stats', '--json', ...dbFlag(data)])).out);
      const after = Date.now();
      const age = (at: number) => Math.round((at - (now - 100_000)) / 1000);
      assert.ok(st.oldest_pending_age_s >= age(before) && st.oldest_pending_age_s <= age(after), String(st.oldest_pending_age_s));
      st.oldest_pending_age_s = 'compared above';
      seen.set('stats --json', JSON.stringify(st));
      outputs.push(seen);
    }
    const [sqlite, postgres] = outputs as [Map<string, string>, Map<string, string>];
    for (const [cmd, out] of sqlite) assert.equal(postgres.get(cmd), out, cmd);
    // What the seeded rows must read as, so that two equal but wrong answers fail too.
    assert.deepEqual(JSON.parse(sqlite.get('requests list --json')!).map((r: { request_id: string }) => r.request_id), [R4, R3, R2, R1]);
    assert.deepEqual(JSON.parse(sqlite.get('keys list --json')!).map((r: { name: string }) => r.name), ['site-a', 'site-b', 'site.c', 'site_d', 'sitea']);
    const rcv = JSON.parse(sqlite.get('receivers --all --json')!) as Array<{ origin: string; queued: number }>;
    assert.deepEqual(rcv.map((r) => [r.origin, r.queued]), [['https://b.example', 0], ['http://a.example:8080', 1], ['http://idle.example', 0]]);
    const st = JSON.parse(sqlite.get('stats --json')!);
    assert.deepEqual(st.states, { queued: 0, authorizing: 0, delivering: 1, delivered: 1, failed: 2 });
    assert.deepEqual(st.delivery.last_hour, { attempts: 5, delivered: 1, success_rate: 0.2, requests_delivered: 1, requests_failed: 2 });
    assert.match(sqlite.get(`requests show ${R2}`)!, /#2 \S+ failed\s+410 31 ms/);
    assert.deepEqual(JSON.parse(sqlite.get('acl unknown --json')!).map((r: { token: string }) => r.token), ['unkn…0001', 'unkn…0002'], 'ties by hash');
  });
});

describe('the engine a command names', () => {
  it('bad --database-url or DATABASE_URL: exit 2 and one line; --db with --database-url: exit 2', async () => {
    for (const [args, env] of [
      [['stats', '--database-url', 'mysql://x@h/db'], {}],
      [['requests', 'list', '--database-url', 'not a url'], {}],
      [['keys', 'list'], { DATABASE_URL: 'postgres://' }],
      [['receivers', '--db', '/tmp/x.db', '--database-url', 'postgres://u@127.0.0.1/db'], {}],
    ] as Array<[string[], Record<string, string>]>) {
      const r = await cli(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.match(r.err, /--database-url|DATABASE_URL/);
    }
  });

  it('an unreachable server: exit 1, the URL named without its password, on every command', async () => {
    const port = await freePort();
    const url = `postgres://admin:s3cret-Pa55@127.0.0.1:${port}/chargegate`;
    for (const args of [['requests', 'list'], ['requests', 'show', R1], ['replay', '--failed'], ['stats'], ['receivers'], ['keys', 'list'],
      ['keys', 'add', 'site-a'], ['keys', 'revoke', 'site-a'], ['acl', 'unknown'], ['acl', 'unknown', '--clear']]) {
      const r = await cli([...args, '--database-url', url]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, new RegExp(`cannot use PostgreSQL at postgres://admin:\\*\\*\\*@127\\.0\\.0\\.1:${port}/chargegate`));
      assert.ok(!`${r.out}${r.err}`.includes('s3cret'), `${args.join(' ')} printed the password`);
    }
  });

  it('backup on PostgreSQL: exit 2, pointing to pg_dump, password not printed; --db still backs up a file', async (t) => {
    const env = { DATABASE_URL: 'postgres://admin:s3cret-Pa55@db.example/chargegate' };
    const dir = tempDir(t);
    const r = await cli(['backup', join(dir, 'never.dump')], env);
    assert.equal(r.code, 2);
    assert.match(r.err, /pg_dump --format=custom --file='\S+never\.dump' 'postgres:\/\/admin:\*\*\*@db\.example\/chargegate'/);
    assert.ok(!r.err.includes('s3cret'));
    assert.ok(!existsSync(join(dir, 'never.dump')));
    // --db beats DATABASE_URL from the environment: a file on a box set up for PostgreSQL.
    const file = join(dir, 'c.db');
    assert.equal((await cli(['keys', 'add', 'site-a', '--db', file], env)).code, 0);
    const b = await cli(['backup', join(dir, 'copy.db'), '--db', file], env);
    assert.equal(b.code, 0, b.err);
    assert.equal(JSON.parse((await cli(['keys', 'list', '--json', '--db', join(dir, 'copy.db')])).out)[0].name, 'site-a');
  });
});
