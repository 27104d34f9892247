import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import type { DeliveryResult } from '../../src/core/types.ts';
import { createDispatcher, type TaskRunner } from '../../src/dispatch/dispatcher.ts';
import { createCommitter } from '../../src/queue/committer.ts';
import { openDb } from '../../src/queue/db.ts';
import { createDepth } from '../../src/queue/depth.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { createStore } from '../../src/queue/store.ts';
import { captureLog } from '../support/app.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

// The failure paths a real worker cannot be made to take on demand (a thread that hangs
// or crashes) run against a scripted pool; everything else here is real.

function setup(t: { after: (fn: () => void) => void }, pool: TaskRunner, env: Record<string, string> = {}) {
  const path = join(tempDir(t), 'd.db');
  const db = openDb(path, { busyTimeoutMs: 1000 });
  migrate(db);
  t.after(() => db.close());
  const config = loadConfig({ DB_PATH: path, WORKERS: '1', ...env });
  const store = createStore(db);
  const committer = createCommitter(db);
  const depth = createDepth(store, 100);
  const dispatcher = createDispatcher({ config, store, committer, depth, pool, log: captureLog().log });
  t.after(() => void dispatcher.stop(0));
  const id = randomUUID();
  store.insert({ id, station_id: 's', driver_token: 'ABCD-efgh1234567890_~valid.token', token_hash: 'h', token_mask: 'm', callback_url: 'http://127.0.0.1:9/cb', created_at: Date.now() });
  depth.resync();
  const get = () => db.prepare('SELECT * FROM charging_requests WHERE id = ?').get(id) as Record<string, unknown>;
  return { dispatcher, get, depth };
}

const ok200 = (task: { items: Array<{ id: string }> }): DeliveryResult[] =>
  task.items.map((i) => ({ id: i.id, started_at: Date.now(), duration_ms: 1, http_status: 200, error: null, retry_after_ms: null }));

describe('dispatcher failure paths', () => {
  it('a decision not made within AUTHORIZATION_TIMEOUT_MS is unknown/timeout, and is still delivered', async (t) => {
    const bodies: string[] = [];
    const pool: TaskRunner = {
      run: (task, { name }) => {
        if (name === 'decide') return new Promise(() => undefined); // a thread that never answers
        const tk = task as { items: Array<{ id: string; body: string }> };
        bodies.push(...tk.items.map((i) => i.body));
        return Promise.resolve(ok200(tk));
      },
    };
    const { dispatcher, get, depth } = setup(t, pool, { AUTHORIZATION_TIMEOUT_MS: '50' });
    dispatcher.start();
    await waitFor(() => get().state === 'delivered', { what: 'delivery' });
    assert.equal(get().decision_status, 'unknown');
    assert.equal(get().decision_reason, 'timeout');
    assert.equal(JSON.parse(bodies[0]!).status, 'unknown');
    assert.equal(depth.value, 0);
  });

  it('a crashing decide task gives unknown/worker_error', async (t) => {
    const pool: TaskRunner = {
      run: (task, { name }) => (name === 'decide' ? Promise.reject(new Error('worker exited')) : Promise.resolve(ok200(task as never))),
    };
    const { dispatcher, get } = setup(t, pool);
    dispatcher.start();
    await waitFor(() => get().state === 'delivered', { what: 'delivery' });
    assert.equal(get().decision_reason, 'worker_error');
  });

  it('a crashing deliver task counts as a failed attempt and is retried', async (t) => {
    let deliveries = 0;
    const pool: TaskRunner = {
      run: (task, { name }) => {
        const tk = task as { items: Array<{ id: string }> };
        if (name === 'decide') return Promise.resolve(tk.items.map((i) => ({ id: i.id, status: 'allowed', reason: 'acl_match', source: 'local_list', latency_ms: 0 })));
        return ++deliveries === 1 ? Promise.reject(new Error('worker exited')) : Promise.resolve(ok200(tk));
      },
    };
    const { dispatcher, get } = setup(t, pool, { CALLBACK_RETRY_BASE_MS: '1' });
    dispatcher.start();
    await waitFor(() => get().state === 'delivered', { what: 'delivery' });
    assert.equal(get().attempts, 2);
  });
});
