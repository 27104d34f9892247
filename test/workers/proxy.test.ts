import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createTls } from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { classify } from '../../src/core/retry.ts';
import type { DeliverTask, ProxySettings } from '../../src/core/types.ts';
import { deliver } from '../../workers/deliver.ts';
import { startApp } from '../support/app.ts';
import { startAuthority } from '../support/authority.ts';
import { authorize, item, settings, task } from '../support/authorize.ts';
import { startProxy } from '../support/proxy.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// Outbound forward proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) with a real proxy on
// loopback: callbacks and upstream calls go through it, NO_PROXY hosts bypass it, a proxy
// that is down is a network error (retried), and the callback URL policy still refuses
// targets by their text before anything is sent to the proxy.

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const FIXTURES = new URL('../faults/fixtures/', import.meta.url);

const via = (proxy: string, noProxy: string | null = null): ProxySettings => ({ httpProxy: proxy, httpsProxy: proxy, noProxy });

const deliverTask = (url: string, proxy: ProxySettings | null): DeliverTask => ({
  timeoutMs: 5000,
  allowedHosts: null,
  proxy,
  items: [{ id: 'req-p', url, body: '{"status":"allowed"}', headers: { 'webhook-id': 'req-p', 'webhook-timestamp': '1' } }],
});

/** A port nothing listens on: a proxy that is down. */
async function deadPort(): Promise<number> {
  const p = await startProxy();
  await p.close();
  return p.port;
}

describe('outbound proxies: configuration', () => {
  it('reads upper- and lower-case variables (lower-case first, as curl and undici) and names a bad one', () => {
    const c = loadConfig({ HTTPS_PROXY: 'http://upper:3128', https_proxy: 'http://lower:3128', HTTP_PROXY: 'http://p:8080', no_proxy: 'localhost,.internal' });
    assert.equal(c.httpsProxy, 'http://lower:3128');
    assert.equal(c.httpProxy, 'http://p:8080');
    assert.equal(c.noProxy, 'localhost,.internal');
    assert.equal(loadConfig({}).httpProxy, null);
    assert.throws(() => loadConfig({ http_proxy: 'socks5://p:1080' }), /invalid http_proxy="socks5:\/\/p:1080"/);
    assert.throws(() => loadConfig({ HTTPS_PROXY: 'http://p:3128/path' }), /invalid HTTPS_PROXY=.*without a path/);
    assert.throws(() => loadConfig({}, { HTTP_PROXY: 'nope' }), /invalid --http-proxy="nope"/);
  });
});

describe('outbound proxies: callbacks (worker side)', () => {
  it('sends an http: callback through the proxy in absolute form', async (t) => {
    const proxy = await startProxy();
    t.after(proxy.close);
    const rx = await startReceiver();
    t.after(rx.close);
    const [r] = (await deliver(deliverTask(rx.url('/cb'), via(proxy.url))))!;
    assert.equal(r!.http_status, 200);
    assert.deepEqual(proxy.calls, [{ method: 'POST', target: rx.url('/cb') }]);
    assert.equal(rx.calls[0]!.body, '{"status":"allowed"}');
    assert.equal(rx.calls[0]!.headers['webhook-id'], 'req-p');
  });

  it('tunnels an https: callback with CONNECT (TLS end to end, to the receiver itself)', async (t) => {
    const proxy = await startProxy();
    t.after(proxy.close);
    const tls = createTls({ cert: readFileSync(new URL('selfsigned.crt', FIXTURES)), key: readFileSync(new URL('selfsigned.key', FIXTURES)) }, (_req, res) => res.end());
    let handshakes = 0;
    tls.on('connection', () => handshakes++);
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => { tls.closeAllConnections(); tls.close(() => r()); }));
    const port = (tls.address() as AddressInfo).port;
    const [r] = (await deliver(deliverTask(`https://127.0.0.1:${port}/cb`, via(proxy.url))))!;
    assert.deepEqual(proxy.calls, [{ method: 'CONNECT', target: `127.0.0.1:${port}` }]);
    assert.equal(handshakes, 1, 'the tunnel reached the receiver');
    // The receiver's certificate is self-signed: the worker verified it through the tunnel.
    assert.equal(r!.http_status, null);
    assert.match(String(r!.error), /SELF_SIGNED|CERT|UNABLE/);
  });

  it('bypasses the proxy for NO_PROXY hosts', async (t) => {
    const proxy = await startProxy();
    t.after(proxy.close);
    const rx = await startReceiver();
    t.after(rx.close);
    const [r] = (await deliver(deliverTask(rx.url('/cb'), via(proxy.url, `example.org, 127.0.0.1:${rx.port}`))))!;
    assert.equal(r!.http_status, 200);
    assert.equal(proxy.calls.length, 0);
    assert.equal(rx.calls.length, 1);
  });

  it('a proxy that is down is a network error, retried', async () => {
    const port = await deadPort();
    const [r] = (await deliver(deliverTask('http://127.0.0.1:9/cb', via(`http://127.0.0.1:${port}`))))!;
    assert.equal(r!.http_status, null);
    assert.equal(r!.error, 'ECONNREFUSED');
    assert.equal(classify(r!), 'retry');
  });

  it('the URL policy judges the target by its text: refused before the proxy is asked', async (t) => {
    const proxy = await startProxy();
    t.after(proxy.close);
    for (const url of ['http://169.254.169.254/latest/meta-data', 'http://metadata.google.internal/x', 'http://[fe80::1]/cb']) {
      const [r] = (await deliver(deliverTask(url, via(proxy.url))))!;
      assert.equal(r!.error, 'refused_by_policy', url);
    }
    const allowListed = { ...deliverTask('http://elsewhere.example/cb', via(proxy.url)), allowedHosts: ['client.example'] };
    const [r] = (await deliver(allowListed))!;
    assert.equal(r!.error, 'refused_by_policy');
    assert.equal(proxy.calls.length, 0);
  });
});

describe('outbound proxies: the upstream authorizer (worker side)', () => {
  it('asks the authority through the proxy, or directly when NO_PROXY names it', async (t) => {
    const proxy = await startProxy();
    t.after(proxy.close);
    const authority = await startAuthority(() => ({ status: 200, json: { status: 'allowed' } }));
    t.after(() => authority.close());
    const url = authority.url('/authorize');

    const [d1] = await authorize(task(settings(url, { proxy: via(proxy.url) }), [item('via-proxy-0123456789abcdef')]));
    assert.equal(`${d1!.status}/${d1!.source}`, 'allowed/upstream');
    assert.deepEqual(proxy.calls, [{ method: 'POST', target: url }]);

    const [d2] = await authorize(task(settings(url, { proxy: via(proxy.url, '127.0.0.1') }), [item('bypass-0123456789abcdef')]));
    assert.equal(`${d2!.status}/${d2!.source}`, 'allowed/upstream');
    assert.equal(proxy.calls.length, 1, 'NO_PROXY: direct');
    assert.equal(authority.calls.length, 2);
  });

  it('a proxy that is down leaves the upstream unreachable: the offline rules decide', async () => {
    const port = await deadPort();
    const s = settings('http://127.0.0.1:9/authorize', { proxy: via(`http://127.0.0.1:${port}`) });
    const [d] = await authorize(task(s, [item('down-proxy-0123456789abcdef')]));
    assert.equal(`${d!.status}/${d!.reason}/${d!.source}`, 'unknown/upstream_unreachable/offline_rule');
    assert.match(String(d!.upstream_error), /ECONNREFUSED/);
  });
});

describe('outbound proxies: the service', () => {
  it('sends callbacks and upstream calls through HTTP_PROXY', async (t) => {
    const proxy = await startProxy();
    t.after(proxy.close);
    const rx = await startReceiver();
    t.after(rx.close);
    const authority = await startAuthority(() => ({ status: 200, json: { status: 'allowed' } }));
    t.after(() => authority.close());
    const { base } = await startApp(t, { http_proxy: proxy.url, AUTHORIZER_URL: authority.url('/authorize') });
    const res = await fetch(`${base}/api/v1/charging-session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ station_id: S1, driver_token: TOKEN, callback_url: rx.url('/cb') }),
    });
    const { request_id: id } = (await res.json()) as { request_id: string };
    await waitFor(() => rx.callsFor(id).length === 1, { what: 'callback' });
    assert.deepEqual(JSON.parse(rx.callsFor(id)[0]!.body), { station_id: S1, driver_token: TOKEN, status: 'allowed' });
    assert.deepEqual(proxy.calls.map((c) => `${c.method} ${c.target}`).sort(), [`POST ${authority.url('/authorize')}`, `POST ${rx.url('/cb')}`].sort());
  });

  it('retries callbacks while the proxy is down, recording each attempt as a network error', async (t) => {
    const port = await deadPort();
    const rx = await startReceiver();
    t.after(rx.close);
    const { base } = await startApp(t, { HTTP_PROXY: `http://127.0.0.1:${port}`, CALLBACK_MAX_ATTEMPTS: '3' });
    const res = await fetch(`${base}/api/v1/charging-session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ station_id: S1, driver_token: TOKEN, callback_url: rx.url('/cb') }),
    });
    const { request_id: id } = (await res.json()) as { request_id: string };
    const view = await waitFor(async () => {
      const v = (await (await fetch(`${base}/api/v1/charging-session/${id}`)).json()) as { state: string; attempts: Array<{ error: string; outcome: string }> };
      return v.state === 'failed' ? v : null;
    }, { what: 'failed after its attempts' });
    assert.deepEqual(view.attempts.map((a) => `${a.outcome}/${a.error}`), ['retry/ECONNREFUSED', 'retry/ECONNREFUSED', 'failed/ECONNREFUSED']);
    assert.equal(rx.calls.length, 0);
  });
});
