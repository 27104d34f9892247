import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DeliverTask, DeliveryResult } from '../../src/core/types.ts';
import { createPool } from '../../src/dispatch/pool.ts';

// The worker pool with the real task file, against a real receiver: what only shows when
// the work runs in a worker thread (calling workers/deliver.ts directly does not show it).

describe('worker pool', () => {
  it('after an idle gap that closes the kept-alive connections, the next callback is delivered at once', { timeout: 30_000 }, async (t) => {
    // A receiver as many clients run one: Node's http server with its default keep-alive,
    // closing a connection idle for 5 s (and advertising `Keep-Alive: timeout=5`).
    let requests = 0;
    const closed: Array<Promise<unknown>> = [];
    const server = createServer((req, res) => {
      requests++;
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    assert.equal(server.keepAliveTimeout, 5000);
    server.on('connection', (socket) => closed.push(once(socket, 'close')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => {
      server.closeAllConnections();
      server.close();
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`;

    const pool = createPool({ filename: fileURLToPath(new URL('../../workers/task.ts', import.meta.url)), threads: 1, concurrency: 8 });
    t.after(() => pool.destroy());
    const deliver = async (id: string): Promise<DeliveryResult> => {
      const task: DeliverTask = { timeoutMs: 5000, allowedHosts: null, items: [{ id, url, body: '{"a":1}', headers: { 'webhook-id': id, 'webhook-timestamp': '1' } }] };
      return ((await pool.run(task, { name: 'deliver' })) as DeliveryResult[])[0]!;
    };

    const burst = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => deliver(`burst-${i}`)));
    assert.deepEqual(burst.map((r) => r.http_status), [204, 204, 204, 204, 204, 204]);
    const connections = closed.length;

    // The idle gap lasts until every connection is closed: by the service retiring its idle
    // sockets, or at the latest by the receiver after its 5 s (an event, not a sleep).
    await Promise.all(closed);
    const after = await deliver('after-idle');
    assert.equal(after.error, null, `the first attempt after the gap failed: ${JSON.stringify(after)}`);
    assert.equal(after.http_status, 204);
    assert.equal(requests, 7, 'one POST per attempt, none repeated behind its back');
    assert.equal(closed.length, connections + 1, 'sent on a new connection');
  });
});
