import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import type { DeliveryResult } from '../../src/core/types.ts';
import { enter, type GateRef } from '../../src/core/gate.ts';
import { hashToken } from '../../src/core/token.ts';
import type { AuthorizeTask } from '../../src/core/types.ts';
import { authorize } from '../../workers/authorize.ts';
import { startAuthority } from '../support/authority.ts';
import { createDispatcher, type Observer, type TaskRunner } from '../../src/dispatch/dispatcher.ts';
import { openDb } from '../../src/queue/db.ts';
import { createDepth } from '../../src/queue/depth.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { createSqliteQueue } from '../../src/queue/sqlite.ts';
import { createStore } from '../../src/queue/store.ts';
import { captureLog } from '../support/app.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

// The failure paths a real worker cannot be made to take on demand (a thread that hangs
// or crashes) run against a scripted pool; everything else here is real.

async function setup(
  t: { after: (fn: () => void) => void },
  pool: TaskRunner,
  env: Record<string, string> = {},
  observer?: Observer,
  count = 1,
  urls = ['http://127.0.0.1:9/cb'],
) {
  const path = join(tempDir(t), 'd.db');
  const db = openDb(path, { busyTimeoutMs: 1000 });
  migrate(db);
  t.after(() => db.close());
  const config = loadConfig({ DB_PATH: path, WORKERS: '1', ...env });
  const store = createStore(db);
  const queue = createSqliteQueue(db, { path, maxCacheEntries: 1000, keysRequired: false });
  const ids = Array.from({ length: count }, () => randomUUID());
  ids.forEach((id, i) => {
    store.insert({ id, station_id: 's', driver_token: 'ABCD-efgh1234567890_~valid.token', token_hash: 'h', token_mask: 'm', callback_url: urls[i % urls.length]!, created_at: Date.now() });
  });
  const depth = await createDepth(queue, 1000);
  const dispatcher = createDispatcher({ config, queue, depth, pool, log: captureLog().log, pollMs: 50, ...(observer ? { observer } : {}) });
  t.after(() => void dispatcher.stop(0));
  const id = ids[0]!;
  const get = () => db.prepare('SELECT * FROM charging_requests WHERE id = ?').get(id) as Record<string, unknown>;
  const attempts = () => db.prepare('SELECT COUNT(*) FROM callback_attempts WHERE request_id = ?').pluck().get(id) as number;
  return { dispatcher, get, depth, attempts, db };
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
    const { dispatcher, get, depth } = await setup(t, pool, { AUTHORIZATION_TIMEOUT_MS: '50' });
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
    const { dispatcher, get } = await setup(t, pool);
    dispatcher.start();
    await waitFor(() => get().state === 'delivered', { what: 'delivery' });
    assert.equal(get().decision_reason, 'worker_error');
  });

  it('a crashing deliver task records no attempt (nobody knows if it POSTed) and the request is delivered later', async (t) => {
    let deliveries = 0;
    const pool: TaskRunner = {
      run: (task, { name }) => {
        const tk = task as { items: Array<{ id: string }> };
        if (name === 'decide') return Promise.resolve(tk.items.map((i) => ({ id: i.id, status: 'allowed', reason: 'acl_match', source: 'local_list', latency_ms: 0 })));
        return ++deliveries === 1 ? Promise.reject(new Error('worker exited')) : Promise.resolve(ok200(tk));
      },
    };
    const { dispatcher, get, attempts } = await setup(t, pool, { CALLBACK_RETRY_BASE_MS: '1' });
    dispatcher.start();
    await waitFor(() => get().state === 'delivered', { what: 'delivery' });
    assert.equal(get().attempts, 1);
    assert.equal(attempts(), 1);
  });

  it('a deliver task that cannot start before its deadline is cancelled: no POST, no attempt row', async (t) => {
    let started = 0;
    let calls = 0;
    const pool: TaskRunner = {
      run: async (task, { name }) => {
        const tk = task as { gate?: GateRef; items: Array<{ id: string }> };
        if (name === 'decide') return tk.items.map((i) => ({ id: i.id, status: 'allowed', reason: 'acl_match', source: 'local_list', latency_ms: 0 }));
        // The first deliver task waits in a busy thread past its start deadline.
        if (++calls === 1) await new Promise((r) => setTimeout(r, 300));
        if (!enter(tk.gate)) return null;
        started++;
        return ok200(tk);
      },
    };
    const { dispatcher, get, attempts } = await setup(t, pool, { CALLBACK_TIMEOUT_MS: '50' });
    dispatcher.start();
    await waitFor(() => get().state === 'delivered', { what: 'delivery' });
    assert.equal(started, 1, 'one task ran');
    assert.equal(get().attempts, 1);
    assert.equal(attempts(), 1, 'the cancelled task left no attempt row');
  });

  it('a decision whose claim was released meanwhile is dropped: not delivered, not counted', async (t) => {
    let releaseDecide!: () => void;
    const decided: unknown[] = [];
    let delivers = 0;
    const pool: TaskRunner = {
      run: async (task, { name }) => {
        const tk = task as { items: Array<{ id: string }> };
        if (name === 'decide') {
          await new Promise<void>((r) => (releaseDecide = r));
          return tk.items.map((i) => ({ id: i.id, status: 'allowed', reason: 'acl_match', source: 'local_list', latency_ms: 0 }));
        }
        delivers++;
        return ok200(tk);
      },
    };
    const { dispatcher, get, attempts } = await setup(t, pool, {}, { decided: (d) => decided.push(d), attempted: () => undefined });
    dispatcher.start();
    await waitFor(() => typeof releaseDecide === 'function', { what: 'decide task running' });
    assert.deepEqual(await dispatcher.stop(0), { released: 1 });
    releaseDecide();
    await waitFor(() => dispatcher.probe().inflight === 0, { what: 'the item finished' });
    assert.equal(get().state, 'queued');
    assert.equal(get().decision_status, null);
    assert.equal(decided.length, 0, 'not counted');
    assert.equal(delivers, 0, 'not delivered');
    assert.equal(attempts(), 0);
  });
});

describe('decision deadlines', () => {
  it('an upstream step that starts late still leaves the offline rules their turn (allow_offline is allowed, not unknown)', async (t) => {
    const authority = await startAuthority(() => ({ hang: true }));
    t.after(authority.close);
    let decision: Record<string, unknown> | null = null;
    const pool: TaskRunner = {
      run: async (task, { name }) => {
        const tk = task as { items: Array<{ id: string; driver_token: string }> };
        if (name === 'decide') {
          return tk.items.map((i) => ({
            id: i.id, status: 'unknown', reason: 'referred', source: 'upstream', latency_ms: 0,
            referral: { token_hash: hashToken(i.driver_token), station: 's', offline: 'allow_offline', listed: true },
          }));
        }
        if (name === 'authorize') {
          // The thread is busy elsewhere for half the decision's time before it starts.
          await new Promise((r) => setTimeout(r, 200));
          return authorize(task as AuthorizeTask);
        }
        return ok200(tk as never);
      },
    };
    const { dispatcher, get } = await setup(t, pool, { AUTHORIZER_URL: authority.url(), AUTHORIZATION_TIMEOUT_MS: '400' }, {
      decided: (d) => (decision = d as unknown as Record<string, unknown>),
      attempted: () => undefined,
    });
    dispatcher.start();
    await waitFor(() => get().state === 'delivered', { what: 'delivery' });
    assert.equal(`${get().decision_status}/${get().decision_reason}/${get().decision_source}`, 'allowed/allow_offline/offline_rule');
    assert.match(String(decision!.upstream_error), /timeout/);
  });
});

describe('dispatcher invariants', () => {
  it('every item finishes exactly once, slots and gates balance, the depth counter matches the rows', async (t) => {
    // A pool whose answers are a mix of every outcome: decided, failed, hung past the
    // deadline, delivered, retried, refused, crashed.
    let n = 0;
    const pool: TaskRunner = {
      run: async (task, { name }) => {
        const tk = task as { gate?: GateRef; items: Array<{ id: string }> };
        const k = n++ % 7;
        if (k === 6) await new Promise((r) => setTimeout(r, 80)); // past the start deadline
        if (!enter(tk.gate)) return null;
        if (name === 'decide') {
          if (k === 5) throw new Error('worker exited');
          return tk.items.map((i) => ({ id: i.id, status: 'allowed', reason: 'acl_match', source: 'local_list', latency_ms: 0 }));
        }
        if (k === 4) throw new Error('worker exited');
        const status = [200, 503, 200, 410][k % 4]!;
        return tk.items.map((i) => ({ id: i.id, started_at: Date.now(), duration_ms: 1, http_status: status, error: null, retry_after_ms: null }));
      },
    };
    const origins = ['http://a.test/cb', 'http://b.test:81/cb', 'http://c.test/x'];
    const { dispatcher, depth, db } = await setup(t, pool, { CALLBACK_TIMEOUT_MS: '40', AUTHORIZATION_TIMEOUT_MS: '40', CALLBACK_MAX_ATTEMPTS: '3', WORKER_CONCURRENCY: '4', CALLBACK_MAX_IN_FLIGHT_PER_ORIGIN: '2' }, undefined, 60, origins);
    dispatcher.start();
    const open = () => db.prepare("SELECT COUNT(*) FROM charging_requests WHERE state IN ('queued','authorizing','delivering')").pluck().get() as number;
    await waitFor(() => open() === 0, { what: 'every request finished', timeoutMs: 30_000 }).catch((e) => {
      console.log(db.prepare("SELECT state, attempts, claim_count, locked_at, due_at - strftime('%s','now')*1000 AS due_in, decision_status, origin FROM charging_requests WHERE state IN ('queued','authorizing','delivering')").all(), dispatcher.probe());
      throw e;
    });
    await waitFor(() => dispatcher.probe().inflight === 0 && dispatcher.probe().gates === 0, { what: 'nothing held, every task settled' });
    assert.deepEqual(dispatcher.probe(), { inflight: 0, doubleFinishes: 0, decisionSlots: 0, deliverySlots: 0, waiting: 0, gates: 0 });
    assert.equal(depth.value, 0);
    await depth.resync();
    assert.equal(depth.value, 0);
    // Attempt rows only for POSTs reported as made: numbered 1..attempts without gaps.
    const gaps = db.prepare(`SELECT COUNT(*) FROM charging_requests r WHERE attempts != (SELECT COUNT(*) FROM callback_attempts a WHERE a.request_id = r.id)`).pluck().get();
    assert.equal(gaps, 0);
  });
});
