import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { ChargegateError } from '../../src/core/errors.ts';
import { compilePolicy } from '../../src/core/urlpolicy.ts';
import { apiDocument, createServer } from '../../src/http/server.ts';
import { cli } from '../support/cli.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// The OpenAPI document (GET /openapi.json, `chargegate openapi`): valid OpenAPI 3.1 by a
// maintained validator, the same from both places, covering every route, and true: every
// answer it documents is produced here by a sample request against the real server, and
// the status, body and documented headers are held against the document. The callback
// the service really sends is held against the `webhooks` entry, signature included.

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  webhooks: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
};
type Operation = {
  parameters?: Array<{ name: string; in: string; required: boolean; schema: Record<string, unknown> }>;
  responses: Record<string, { headers?: Record<string, { required: boolean; schema: Record<string, unknown> }>; content?: Record<string, { schema: Record<string, unknown> }> }>;
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
};

/** A JSON Schema checker that resolves the document's own $refs. */
function checker(doc: Doc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  ajv.addSchema({ $id: 'doc', components: doc.components }, 'doc');
  return (schema: Record<string, unknown>, value: unknown, what: string) => {
    const rebased = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/'));
    const ok = ajv.validate(rebased, value);
    assert.ok(ok, `${what}: ${ajv.errorsText()} in ${JSON.stringify(value)}`);
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One raw HTTP/1.1 exchange: for what fetch would refuse to send (oversized headers, a stalled body). */
function raw(port: number, text: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let data = '';
    socket.on('data', (c) => (data += c));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      const [line, ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      resolve({ status: Number(line!.split(' ')[1]), headers, body });
    });
  });
}

const json = { 'content-type': 'application/json' };
const body = (over: Record<string, unknown> = {}) => JSON.stringify({ station_id: S1, driver_token: TOKEN, callback_url: 'http://127.0.0.1:9/cb', ...over });

describe('OpenAPI document', () => {
  it('is valid OpenAPI 3.1, the same from the API and the CLI, and documents every route', async (t) => {
    const doc = (await apiDocument('9.9.9')) as Doc;
    const validator = new Validator();
    const result = await validator.validate(doc);
    assert.deepEqual(result, { valid: true });
    assert.equal(validator.version, '3.1');

    const printed = await cli(['openapi']);
    assert.equal(printed.code, 0);
    assert.deepEqual(JSON.parse(printed.out), doc);

    const dir = mkdtempSync(join(tmpdir(), 'cg-oa-'));
    const app = await createApp({ config: loadConfig({ DB_PATH: join(dir, 'a.db'), WORKERS: '1' }), log: pino({ level: 'silent' }), version: '9.9.9' });
    t.after(async () => {
      await app.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const served = await app.server.inject({ url: '/openapi.json' });
    assert.equal(served.statusCode, 200);
    assert.deepEqual(JSON.parse(served.payload), doc);

    // The catch-all '*' routes only answer 405 + Allow for a method a path does not serve.
    const routes = app.server.table().filter((r) => r.method !== '*').map((r) => `${r.method.toUpperCase()} ${r.path}`).sort();
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    assert.deepEqual(documented, routes, 'every route and nothing else');
    assert.ok(doc.webhooks.chargingSessionResult?.post, 'the callback is a webhook');
  });

  it('tells the truth: every documented answer, as the server sends it for a sample request', async (t) => {
    const doc = (await apiDocument('9.9.9')) as Doc;
    const check = checker(doc);
    const rx = await startReceiver();
    t.after(rx.close);
    const dir = mkdtempSync(join(tmpdir(), 'cg-oa-'));
    const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', DB_PATH: join(dir, 'a.db'), WORKERS: '1' });
    const app = await createApp({ config, log: pino({ level: 'silent' }), // Short request deadline: the 408 sample sends half a body and waits for it.
      http: { headersTimeoutMs: 500, requestTimeoutMs: 500, checkIntervalMs: 100 } });
    let stopped = false;
    t.after(async () => {
      if (!stopped) await app.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    await app.start();
    const port = Number(app.server.info.port);
    const base = `http://127.0.0.1:${port}`;
    const fromFetch = async (res: Response): Promise<Answer> => ({ status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() });
    const post = (payload: string, headers: Record<string, string> = json) => fetch(`${base}/api/v1/charging-session`, { method: 'POST', headers, body: payload }).then(fromFetch);
    const get = (path: string) => fetch(`${base}${path}`).then(fromFetch);

    // A server on the same routes whose accept path fails as a sick database or a bug would.
    const failing = (err: Error) =>
      createServer({ host: '127.0.0.1', port: 0, intake: { accept: async () => { throw err; } } as never, policy: compilePolicy(null), reads: {} as never, health: {} as never, log: pino({ level: 'silent' }) });
    const inject = async (server: ReturnType<typeof createServer>, opts: { method?: string; url?: string } = {}): Promise<Answer> => {
      const r = await server.inject({ method: opts.method ?? 'POST', url: opts.url ?? '/api/v1/charging-session', headers: json, payload: opts.method === 'GET' ? undefined : body() });
      return { status: r.statusCode, headers: r.headers as Answer['headers'], body: r.payload };
    };
    // The same routes behind API keys (none matches) and a scrape token.
    const locked = createServer({
      host: '127.0.0.1', port: 0, intake: {} as never, policy: compilePolicy(null), reads: {} as never, health: {} as never,
      log: pino({ level: 'silent' }), keyring: { required: () => true, verify: () => null }, metricsToken: 'scrape',
    });

    const accepted = await post(body({ callback_url: rx.url('/cb') }));
    const id = (JSON.parse(accepted.body) as { request_id: string }).request_id;
    await waitFor(() => rx.callsFor(id).length === 1, { what: 'callback' });
    await post(body(), { ...json, 'idempotency-key': 'k' });

    const samples: Record<string, () => Promise<Answer>> = {
      'post /api/v1/charging-session 202': async () => accepted,
      'post /api/v1/charging-session 400': () => post(body({ stationId: S1, token_type: 'CARD' })),
      'post /api/v1/charging-session 408': () =>
        raw(port, `POST /api/v1/charging-session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"station_id"`),
      'post /api/v1/charging-session 413': () => post(body({ pad: 'x'.repeat(17 * 1024) })),
      'post /api/v1/charging-session 415': () => post(body(), { 'content-type': 'text/plain' }),
      'post /api/v1/charging-session 422': () => post(body({ token_type: 'APP_USER' }), { ...json, 'idempotency-key': 'k' }),
      'post /api/v1/charging-session 431': () =>
        raw(port, `POST /api/v1/charging-session HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\nContent-Length: 0\r\n\r\n`),
      'post /api/v1/charging-session 500': () => inject(failing(new Error('bug'))),
      'post /api/v1/charging-session 503': () => inject(failing(new ChargegateError('CG_ERR_QUEUE_FULL', 'the queue is full'))),
      'get /api/v1/charging-session/{request_id} 200': () => get(`/api/v1/charging-session/${id}`),
      'get /api/v1/charging-session/{request_id} 400': () => get('/api/v1/charging-session/nope'),
      'post /api/v1/charging-session 401': () => inject(locked),
      'get /api/v1/charging-session/{request_id} 401': () => inject(locked, { method: 'GET', url: `/api/v1/charging-session/${id}` }),
      'get /metrics 401': () => inject(locked, { method: 'GET', url: '/metrics' }),
      'get /api/v1/charging-session/{request_id} 404': () => get('/api/v1/charging-session/00000000-0000-4000-8000-000000000000'),
      'get /health 200': () => get('/health'),
      'get /health/live 200': () => get('/health/live'),
      'get /health/ready 200': () => get('/health/ready'),
      'get /metrics 200': () => get('/metrics'),
      'get /openapi.json 200': () => get('/openapi.json'),
      // A stopped service: its database closed and its threads gone.
      'get /health 503': async () => {
        const r = await app.server.inject({ url: '/health' });
        return { status: r.statusCode, headers: r.headers as Answer['headers'], body: r.payload };
      },
      'get /health/ready 503': async () => {
        const r = await app.server.inject({ url: '/health/ready' });
        return { status: r.statusCode, headers: r.headers as Answer['headers'], body: r.payload };
      },
    };

    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).flatMap(([method, op]) => Object.keys(op.responses).map((status) => `${method} ${path} ${status}`)),
    );
    assert.deepEqual(Object.keys(samples).sort(), documented.sort(), 'a sample for every documented answer');

    for (const key of Object.keys(samples)) {
      if (key.endsWith(' 503') && key.startsWith('get /health') && !stopped) {
        await app.stop();
        stopped = true;
      }
      const [method, path, status] = key.split(' ') as [string, string, string];
      const documentedAnswer = doc.paths[path]![method]!.responses[status]!;
      const real = await samples[key]!();
      assert.equal(real.status, Number(status), key);
      for (const [name, h] of Object.entries(documentedAnswer.headers ?? {})) {
        const value = real.headers[name.toLowerCase()];
        if (h.required) assert.ok(value !== undefined, `${key}: header ${name}`);
        if (value !== undefined) check(h.schema, value, `${key} header ${name}`);
      }
      const [type, media] = Object.entries(documentedAnswer.content ?? {})[0] ?? [];
      if (!type) continue;
      assert.ok(String(real.headers['content-type']).startsWith(type), `${key}: content-type ${real.headers['content-type']}`);
      check(media!.schema, type === 'application/json' ? JSON.parse(real.body) : real.body, key);
    }
  });

  it('the webhook entry describes the callback the service really sends, signature included', async (t) => {
    const doc = (await apiDocument('9.9.9')) as Doc;
    const check = checker(doc);
    const rx = await startReceiver();
    t.after(rx.close);
    const dir = mkdtempSync(join(tmpdir(), 'cg-oa-'));
    const app = await createApp({
      config: loadConfig({ HOST: '127.0.0.1', PORT: '0', DB_PATH: join(dir, 'a.db'), WORKERS: '1', CALLBACK_SIGNING_SECRET: SECRET }),
      log: pino({ level: 'silent' }),
    });
    t.after(async () => {
      await app.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    await app.start();
    const res = await app.server.inject({ method: 'POST', url: '/api/v1/charging-session', headers: json, payload: body({ callback_url: rx.url('/cb'), token_type: 'APP_USER' }) });
    const { request_id: id } = JSON.parse(res.payload) as { request_id: string };
    const [call] = await waitFor(() => (rx.callsFor(id).length ? rx.callsFor(id) : null), { what: 'callback' });

    const hook = doc.webhooks.chargingSessionResult!.post!;
    check(hook.requestBody!.content['application/json']!.schema, call!.json, 'callback body');
    for (const p of hook.parameters!) {
      const value = call!.headers[p.name];
      assert.ok(value !== undefined || !p.required, `header ${p.name}`);
      check(p.schema, value, `header ${p.name}`);
    }
    assert.equal(call!.headers['webhook-id'], id);
    // Standard Webhooks' own library accepts the signature.
    assert.doesNotThrow(() => new Webhook(SECRET).verify(call!.body, call!.headers as Record<string, string>));
  });
});
