import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import test from 'node:test';
import Database from 'better-sqlite3';
import { assertShape } from '../faults/support/shape.ts';
import { exitWithin, startService } from '../support/process.ts';
import { startHeldReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// README "Durability, queue and shutdown": on SIGTERM the listener stays open while the
// work in flight drains, so a load balancer, supervisor or client learns "not here, retry"
// (503) instead of meeting a refused connection; then it closes and the process exits 0.

const STATION = '123e4567-e89b-12d3-a456-426614174000';
const body = (n: number) => JSON.stringify({ station_id: STATION, driver_token: `shutdown-token-${String(n).padStart(8, '0')}`, callback_url: 'http://127.0.0.1:9/cb' });

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** This end's port: the same value means the same TCP connection. */
  localPort: number;
}

function send(port: number, agent: Agent | false, method: string, path: string, payload?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent, headers: payload ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text, localPort: req.socket!.localPort! }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function assertRefusal(a: Answer, what: string): void {
  assert.equal(a.status, 503, `${what}: ${a.body}`);
  assert.equal(a.headers['retry-after'], '5', `${what}: Retry-After`);
  assert.equal(a.headers.connection, 'close', `${what}: Connection: close`);
  assertShape(a.body, 'rejected', what);
}

test('SIGTERM: while in-flight work drains, POST and /health/ready get 503 on new and kept-alive connections, /health/live 200; then exit 0', { timeout: 60_000 }, async (t) => {
  const { receiver, release } = await startHeldReceiver();
  t.after(() => receiver.close());
  const svc = await startService(t, { env: { CALLBACK_TIMEOUT_MS: '60000', SHUTDOWN_TIMEOUT_MS: '60000' } });
  const accepted = await fetch(`${svc.base}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ station_id: STATION, driver_token: 'shutdown-token-inflight', callback_url: receiver.url() }),
  });
  const { request_id } = (await accepted.json()) as { request_id: string };
  assert.equal(accepted.status, 202);
  await waitFor(() => receiver.calls.length === 1, { what: 'the callback in flight' });

  // Two keep-alive connections a load balancer or client holds open before the signal.
  const agents = [new Agent({ keepAlive: true, maxSockets: 1 }), new Agent({ keepAlive: true, maxSockets: 1 })];
  t.after(() => agents.forEach((a) => a.destroy()));
  const [readyBefore, liveBefore] = await Promise.all([send(svc.port, agents[0]!, 'GET', '/health/ready'), send(svc.port, agents[1]!, 'GET', '/health/live')]);
  assert.equal(readyBefore.status, 200);
  assert.equal(liveBefore.status, 200);

  svc.kill('SIGTERM');
  await waitFor(() => svc.lines.some((l) => l.msg === 'shutting down'), { what: 'the shutdown under way' });

  // Over the connections opened before the signal.
  const readyKept = await send(svc.port, agents[0]!, 'GET', '/health/ready');
  assert.equal(readyKept.localPort, readyBefore.localPort, 'the same connection');
  assert.equal(readyKept.status, 503);
  assert.equal(readyKept.headers.connection, 'close');
  const postKept = await send(svc.port, agents[1]!, 'POST', '/api/v1/charging-session', body(1));
  assert.equal(postKept.localPort, liveBefore.localPort, 'the same connection');
  assertRefusal(postKept, 'POST on a kept-alive connection');

  // Over new connections.
  assertRefusal(await send(svc.port, false, 'POST', '/api/v1/charging-session', body(2)), 'POST on a new connection');
  const readyNew = await send(svc.port, false, 'GET', '/health/ready');
  assert.equal(readyNew.status, 503);
  assert.deepEqual(JSON.parse(readyNew.body), { status: 'DOWN' });
  assert.equal((await send(svc.port, false, 'GET', '/health/live')).status, 200, 'live while draining');
  assert.equal(svc.child.exitCode, null, 'still draining: the callback is held');

  release();
  assert.deepEqual(await exitWithin(svc, 15_000), { code: 0, signal: null }, svc.stderr());
  await assert.rejects(send(svc.port, false, 'GET', '/health/live'), 'the listener is closed once the work drained');
  const db = new Database(svc.dbPath, { readonly: true });
  t.after(() => db.close());
  assert.equal(db.prepare('SELECT state FROM charging_requests WHERE id = ?').pluck().get(request_id), 'delivered', 'the in-flight work finished during the drain');
  assert.equal(db.prepare('SELECT COUNT(*) FROM charging_requests').pluck().get(), 1, 'nothing accepted while stopping');
});
