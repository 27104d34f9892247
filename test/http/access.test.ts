import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Pool } from 'undici';
import { startApp } from '../support/app.ts';
import { cli } from '../support/cli.ts';
import { processDir, runCli, startService } from '../support/process.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';
import { startIntake } from '../faults/support/intake.ts';

// SPEC "Who may call": API keys per client, TLS with rotation, the connection bound and
// each client's share of the queue bound. Real app, real CLI, real HTTPS.

const STATION = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const FIXTURES = new URL('./fixtures/', import.meta.url);
const FAULT_FIXTURES = new URL('../faults/fixtures/', import.meta.url);

type App = Awaited<ReturnType<typeof startApp>>['app'];

function post(app: App, opts: { key?: string; idempotencyKey?: string; callback?: string } = {}) {
  return app.server.inject({
    method: 'POST',
    url: '/api/v1/charging-session',
    headers: {
      'content-type': 'application/json',
      ...(opts.key !== undefined ? { authorization: `Bearer ${opts.key}` } : {}),
      ...(opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {}),
    },
    payload: JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: opts.callback ?? 'http://127.0.0.1:9/cb' }),
  });
}

function read(app: App, id: string, key?: string) {
  return app.server.inject({ method: 'GET', url: `/api/v1/charging-session/${id}`, headers: key ? { authorization: `Bearer ${key}` } : {} });
}

describe('API keys', () => {
  it('once a key exists every call needs one; each client reads only its own requests; revoked and expired keys stop working', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const { app, config } = await startApp(t);
    const db = ['--db', config.dbPath];

    // No key yet: open, as before.
    const open = await post(app, { callback: rx.url() });
    assert.equal(open.statusCode, 202);
    const openId = JSON.parse(open.payload).request_id as string;

    const a = (await cli(['keys', 'add', 'site-a', ...db])).out.trim();
    const b = (await cli(['keys', 'add', 'site-b', ...db])).out.trim();
    assert.match(a, /^cg_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a, b);
    assert.equal((await cli(['keys', 'add', 'site-a', ...db])).code, 1, 'a name is issued once');

    // Missing, malformed and wrong keys: one answer, no hint which part was wrong.
    const answers = await Promise.all([post(app), post(app, { key: 'nope' }), post(app, { key: `${a}x` }), post(app, { key: '' })]);
    for (const r of answers) {
      assert.equal(r.statusCode, 401);
      assert.equal(r.headers['www-authenticate'], 'Bearer realm="chargegate"');
      assert.deepEqual(JSON.parse(r.payload), { status: 'unauthorized', message: 'a valid API key is required: Authorization: Bearer <key>', errors: [] });
    }
    assert.equal((await read(app, openId)).statusCode, 401, 'reads need a key too');

    const fromA = await post(app, { key: a, idempotencyKey: 'same-text', callback: rx.url() });
    assert.equal(fromA.statusCode, 202);
    const idA = JSON.parse(fromA.payload).request_id as string;
    const fromB = await post(app, { key: b, idempotencyKey: 'same-text', callback: rx.url() });
    assert.equal(fromB.statusCode, 202);
    const idB = JSON.parse(fromB.payload).request_id as string;
    assert.notEqual(idA, idB, 'an Idempotency-Key belongs to its client');

    const mine = await read(app, idA, a);
    assert.equal(mine.statusCode, 200);
    assert.equal(JSON.parse(mine.payload).client, 'site-a');
    assert.equal((await read(app, idA, b)).statusCode, 404, "another client's request is not there for b");
    assert.equal((await read(app, openId, a)).statusCode, 404, 'nor one sent before keys existed');
    assert.match((await cli(['requests', 'show', idB, ...db])).out, /client\s+site-b/);

    const list = await cli(['keys', 'list', '--json', ...db]);
    const rows = JSON.parse(list.out) as Array<Record<string, unknown>>;
    assert.deepEqual(rows.map((r) => r.name), ['site-a', 'site-b']);
    assert.ok(!list.out.includes(a) && !list.out.includes(a.slice(3, 20)), 'the key is never shown again');

    assert.equal((await cli(['keys', 'revoke', 'site-a', ...db])).code, 0);
    assert.equal((await post(app, { key: a })).statusCode, 401, 'revoked while the service runs');
    assert.equal((await post(app, { key: b })).statusCode, 202);
    assert.equal((await cli(['keys', 'revoke', 'site-a', ...db])).code, 1);

    const old = (await cli(['keys', 'add', 'old-site', '--expires', '2020-01-01T00:00:00Z', ...db])).out.trim();
    assert.equal((await post(app, { key: old })).statusCode, 401, 'an expired key');

    await waitFor(() => rx.callsFor(idB).length === 1, { what: "b's callback" });
    await app.stop();
    const file = new Database(config.dbPath, { readonly: true });
    t.after(() => file.close());
    const used = file.prepare('SELECT name, last_used_at FROM api_keys ORDER BY name').all() as Array<{ name: string; last_used_at: number | null }>;
    assert.ok(used.find((u) => u.name === 'site-b')!.last_used_at! > 0, 'last use recorded');
    assert.equal(used.find((u) => u.name === 'old-site')!.last_used_at, null);
    assert.equal(file.prepare("SELECT client FROM charging_requests WHERE id = ?").pluck().get(idB), 'site-b');
  });

  it('API_KEYS_REQUIRED=true locks the API before any key exists; health stays open; /metrics asks for METRICS_TOKEN', async (t) => {
    const { app } = await startApp(t, { API_KEYS_REQUIRED: 'true', METRICS_TOKEN: 'scrape-me' });
    assert.equal((await post(app)).statusCode, 401);
    for (const url of ['/health', '/health/live', '/health/ready']) assert.equal((await app.server.inject(url)).statusCode, 200, url);
    const noToken = await app.server.inject('/metrics');
    assert.equal(noToken.statusCode, 401);
    assert.equal(noToken.headers['www-authenticate'], 'Bearer realm="chargegate-metrics"');
    assert.equal((await app.server.inject({ url: '/metrics', headers: { authorization: 'Bearer wrong' } })).statusCode, 401);
    const ok = await app.server.inject({ url: '/metrics', headers: { authorization: 'Bearer scrape-me' } });
    assert.equal(ok.statusCode, 200);
    assert.match(ok.payload, /chargegate_queue_depth/);
  });

  it('one client at its share of the queue bound gets 503; another keeps getting 202', async (t) => {
    // The dispatcher is stopped: accepted requests stay open and count against the bound.
    const s = await startIntake(t, { env: { QUEUE_MAX_SIZE: '10', QUEUE_MAX_PER_CLIENT: '4' } });
    const a = (await cli(['keys', 'add', 'busy', '--db', s.config.dbPath])).out.trim();
    const b = (await cli(['keys', 'add', 'calm', '--db', s.config.dbPath])).out.trim();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await post(s.app, { key: a })).statusCode);
    assert.deepEqual(statuses, [202, 202, 202, 202, 503, 503]);
    const refused = await post(s.app, { key: a });
    assert.equal(refused.headers['retry-after'], '1');
    assert.match(JSON.parse(refused.payload).message, /this client has 4 requests pending/);
    for (let i = 0; i < 4; i++) assert.equal((await post(s.app, { key: b })).statusCode, 202, 'the other client is not held up');
    assert.equal((await post(s.app, { key: b })).statusCode, 503, 'until its own share is used');
  });
});

describe('the door', () => {
  it('connections past MAX_CONNECTIONS are closed at once; a keyed client on its connection still gets 202s', async (t) => {
    const svc = await startService(t, { env: { MAX_CONNECTIONS: '8' } });
    const key = (await runCli(t, ['keys', 'add', 'client', '--db', svc.dbPath])).stdout.trim();
    const pool = new Pool(svc.base, { connections: 1, pipelining: 1, keepAliveTimeout: 60_000 });
    t.after(() => pool.close());
    const send = async () => {
      const r = await pool.request({
        path: '/api/v1/charging-session',
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: 'http://127.0.0.1:9/cb' }),
      });
      await r.body.dump();
      return r.statusCode;
    };
    assert.equal(await send(), 202);
    // A flood of idle connections, far past the bound.
    const flood: Socket[] = [];
    t.after(() => flood.forEach((s) => s.destroy()));
    const closedAtOnce: boolean[] = await Promise.all(
      Array.from({ length: 30 }, () =>
        new Promise<boolean>((resolve) => {
          const s = connect(svc.port, '127.0.0.1');
          flood.push(s);
          s.on('error', () => undefined);
          const timer = setTimeout(() => resolve(false), 1500);
          s.once('close', () => {
            clearTimeout(timer);
            resolve(true);
          });
        }),
      ),
    );
    const closed = closedAtOnce.filter(Boolean).length;
    assert.ok(closed >= 30 - 8, `${closed} of 30 flood connections closed at once (bound 8, one held by the client)`);
    for (let i = 0; i < 5; i++) assert.equal(await send(), 202, 'the keyed client is served on its connection');
  });

  it('TLS: HTTPS with the configured certificate, a new one after SIGHUP; bad files stop the start with exit 2', async (t) => {
    const dir = processDir(t);
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    copyFileSync(new URL('selfsigned.crt', FAULT_FIXTURES), cert);
    copyFileSync(new URL('selfsigned.key', FAULT_FIXTURES), key);
    const svc = await startService(t, { env: { TLS_CERT_FILE: cert, TLS_KEY_FILE: key } });
    const handshake = () =>
      new Promise<{ status: number; fingerprint: string }>((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: svc.port, path: '/health/live', rejectUnauthorized: false, agent: false },
          (res) => {
            const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, fingerprint }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const first = await handshake();
    assert.equal(first.status, 200);
    assert.equal(first.fingerprint, new X509Certificate(readFileSync(cert)).fingerprint256);
    copyFileSync(new URL('rotated.crt', FIXTURES), cert);
    copyFileSync(new URL('rotated.key', FIXTURES), key);
    svc.kill('SIGHUP');
    const rotated = new X509Certificate(readFileSync(cert)).fingerprint256;
    await waitFor(async () => (await handshake()).fingerprint === rotated, { what: 'the new certificate on a new handshake' });
    assert.equal(svc.child.exitCode, null, 'SIGHUP did not stop the service');

    // A key that is not the certificate's, and a missing file: one line naming the variable, exit 2.
    const mismatched = await runCli(t, ['serve'], {
      env: { DB_PATH: join(dir, 'x.db'), PORT: '0', HOST: '127.0.0.1', TLS_CERT_FILE: cert, TLS_KEY_FILE: join(FAULT_FIXTURES.pathname, 'selfsigned.key') },
    });
    assert.equal(mismatched.code, 2, mismatched.stderr);
    assert.match(mismatched.stderr, /^chargegate: invalid TLS_KEY_FILE=.*the key does not match the certificate in TLS_CERT_FILE\n$/);
    const missing = await runCli(t, ['serve'], { env: { DB_PATH: join(dir, 'y.db'), PORT: '0', TLS_CERT_FILE: join(dir, 'none.crt'), TLS_KEY_FILE: key } });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^chargegate: invalid TLS_CERT_FILE=.*no such file\)\n$/);
  });
});
