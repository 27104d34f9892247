import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { post } from '../../workers/deliver.ts';
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

  it('reports a refused connection as a network error', async (t) => {
    const rx = await startReceiver();
    const url = rx.url();
    await rx.close();
    const r = await post(item(url), 2000);
    assert.equal(r.http_status, null);
    assert.equal(r.error, 'ECONNREFUSED');
  });
});
