import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Agent, errors, request } from 'undici';
import { errorOf, post } from '../../workers/deliver.ts';
import { startReceiver } from '../support/receiver.ts';

const item = (url: string) => ({ id: 'req-1', url, body: '{"a":1}', headers: { 'webhook-id': 'req-1', 'webhook-timestamp': '1' } });

describe('callback POST (worker side, real receiver)', () => {
  it('sends the exact body and headers and reports the status', async (t) => {
    const rx = await startReceiver((_c, _n, res) => res.writeHead(204).end());
    t.after(rx.close);
    const r = await post(item(rx.url()), 2000);
    assert.equal(r.http_status, 204);
    assert.equal(r.error, null);
    assert.equal(rx.calls[0]!.body, '{"a":1}');
    assert.equal(rx.calls[0]!.headers['content-type'], 'application/json');
    assert.equal(rx.calls[0]!.headers['webhook-id'], 'req-1');
  });

  it('does not follow redirects', async (t) => {
    const rx = await startReceiver((_c, _n, res) => res.writeHead(302, { location: '/elsewhere' }).end());
    t.after(rx.close);
    const r = await post(item(rx.url()), 2000);
    assert.equal(r.http_status, 302);
    assert.equal(rx.calls.length, 1);
  });

  it('parses Retry-After and caps a huge answer', async (t) => {
    const big = Buffer.alloc(4 * 1024 * 1024, 'x');
    const rx = await startReceiver((_c, _n, res) => res.writeHead(429, { 'retry-after': '7' }).end(big));
    t.after(rx.close);
    const r = await post(item(rx.url()), 5000);
    assert.equal(r.http_status, 429);
    assert.equal(r.retry_after_ms, 7000);
  });

  it('times out on a receiver that never answers', async (t) => {
    const rx = await startReceiver(() => undefined);
    t.after(rx.close);
    const r = await post(item(rx.url()), 200);
    assert.equal(r.http_status, null);
    assert.equal(r.error, 'timeout');
  });

  it('refuses, without a POST, a stored URL the parser would repair (control characters)', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const r = await post(item(rx.url('/x\r\nX-Injected: 1')), 2000);
    assert.equal(r.error, 'refused_by_policy');
    assert.equal(rx.calls.length, 0);
  });

  it('reports a refused connection as a network error', async (t) => {
    const rx = await startReceiver();
    const url = rx.url();
    await rx.close();
    const r = await post(item(url), 2000);
    assert.equal(r.http_status, null);
    assert.equal(r.error, 'ECONNREFUSED');
  });

  // Every deadline is one class, whichever fires first: undici's connect, headers and body
  // timeouts race the attempt's AbortSignal (the same deadline), and /metrics counts
  // `timeout` apart from network errors. The errors below are the ones undici really throws.
  it('classes every kind of timeout as timeout, and network errors by their code', async (t) => {
    const agent = new Agent();
    t.after(() => agent.close());
    const hanging = await startReceiver(() => undefined);
    t.after(hanging.close);
    const headersErr = await request(hanging.url(), { method: 'POST', body: '{}', dispatcher: agent, headersTimeout: 100 }).catch((e: unknown) => e);
    assert.deepEqual(errorOf(headersErr), { code: 'timeout', detail: 'UND_ERR_HEADERS_TIMEOUT' });

    const dripping = await startReceiver((_c, _n, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('x');
    });
    t.after(dripping.close);
    const res = await request(dripping.url(), { method: 'POST', body: '{}', dispatcher: agent, bodyTimeout: 100 });
    const bodyErr = await res.body.text().catch((e: unknown) => e);
    assert.deepEqual(errorOf(bodyErr), { code: 'timeout', detail: 'UND_ERR_BODY_TIMEOUT' });

    const signal = AbortSignal.timeout(50);
    const abortErr = await request(hanging.url(), { method: 'POST', body: '{}', dispatcher: agent, signal }).catch((e: unknown) => e);
    assert.deepEqual(errorOf(abortErr), { code: 'timeout', detail: null });

    // A connect that never completes cannot be staged portably on loopback: undici's own error.
    assert.deepEqual(errorOf(new errors.ConnectTimeoutError()), { code: 'timeout', detail: 'UND_ERR_CONNECT_TIMEOUT' });
    assert.deepEqual(errorOf(Object.assign(new Error('connect ETIMEDOUT 10.0.0.1:80'), { code: 'ETIMEDOUT' })), { code: 'timeout', detail: 'ETIMEDOUT' });
    assert.deepEqual(errorOf(new TypeError('fetch failed', { cause: new errors.HeadersTimeoutError() })), { code: 'timeout', detail: 'UND_ERR_HEADERS_TIMEOUT' });

    assert.deepEqual(errorOf(new errors.SocketError('other side closed')), { code: 'UND_ERR_SOCKET', detail: null });
    assert.deepEqual(errorOf(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), { code: 'ECONNRESET', detail: null });
  });
});
