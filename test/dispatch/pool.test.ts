import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DeliverTask, DeliveryResult } from '../../src/core/types.ts';
import { createPool } from '../../src/dispatch/pool.ts';
import { waitFor } from '../support/tmp.ts';

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

  it('starts no thread until there is work, grows to its size under load without queueing a task behind another, shrinks back when idle', { timeout: 30_000 }, async (t) => {
    // A receiver that holds every POST until released: tasks stay busy as long as the test wants.
    const held: Array<() => void> = [];
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => held.push(() => res.writeHead(204).end()));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => {
      server.closeAllConnections();
      server.close();
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`;
    const filename = fileURLToPath(new URL('../../workers/task.ts', import.meta.url));
    const pool = createPool({ filename, threads: 2, concurrency: 2, idleMs: 300 });
    t.after(() => pool.destroy());
    const deliver = (id: string) => {
      const task: DeliverTask = { timeoutMs: 20_000, allowedHosts: null, items: [{ id, url, body: '{}', headers: { 'webhook-id': id, 'webhook-timestamp': '1' } }] };
      return pool.run(task, { name: 'deliver' }) as Promise<DeliveryResult[]>;
    };
    assert.equal(pool.threads.length, 0, 'no thread before any work');

    // One task, then a second while the first is busy: the second gets a thread of its own.
    const first = deliver('a');
    await waitFor(() => held.length === 1, { what: 'the first POST' });
    assert.equal(pool.threads.length, 1);
    const second = deliver('b');
    await waitFor(() => held.length === 2, { what: 'the second POST, while the first is held' });
    assert.equal(pool.threads.length, 2, 'grown to its size');
    // At its size, more tasks share the threads (up to threads x concurrency): all run at once.
    const more = [deliver('c'), deliver('d')];
    await waitFor(() => held.length === 4, { what: 'four POSTs at once' });
    assert.equal(pool.threads.length, 2, 'never more threads than its size');
    assert.equal(pool.queueSize, 0, 'nothing waits in the pool');

    for (const release of held.splice(0)) release();
    const results = (await Promise.all([first, second, ...more])).flat();
    assert.deepEqual(results.map((r) => r.http_status), [204, 204, 204, 204]);
    await waitFor(() => pool.threads.length === 0, { timeoutMs: 10_000, what: 'the idle threads to end' });

    // And it grows again with new work.
    const again = deliver('e');
    await waitFor(() => held.length === 1, { what: 'a POST after the shrink' });
    held.splice(0)[0]!();
    assert.equal((await again)[0]!.http_status, 204);
  });
});
