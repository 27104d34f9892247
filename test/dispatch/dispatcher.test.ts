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
import { createDepth } from '../../src/queue/depth.ts';
import { captureLog } from '../support/app.ts';
import { ENGINES, type Engine } from '../support/engines.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

// The failure paths a real worker cannot be made to take on demand (a thread that hangs
// or crashes) run against a scripted pool; everything else here is real.

async function setup(
  t: { after: (fn: () => unknown) => void },
  engine: Engine,
  pool: TaskRunner,
  env: Record<string, string> = {},
  observer?: Observer,
  count = 1,
  urls = ['http://127.0.0.1:9/cb'],
) {
  const { queue, all } = await engine.open(t);
  const config = loadConfig({ DB_PATH: join(tempDir(t), 'unused.db'), WORKERS: '1', ...env });
  const ids = Array.from({ length: count }, () => randomUUID());
  for (let i = 0; i < ids.length; i++) {
    const row = { id: ids[i]!, station_id: 's', driver_token: 'ABCD-efgh1234567890_~valid.token', token_hash: 'h', token_mask: 'm' };
    await queue.accept({ ...row, callback_url: urls[i % urls.length]!, created_at: Date.now() }, null, null, null);
  }
  const depth = await createDepth(queue, 1000);
  const dispatcher = createDispatcher({ config, queue, depth, pool, log: captureLog().log, pollMs: 50, ...(observer ? { observer } : {}) });
  t.after(() => dispatcher.stop(0));
  const id = ids[0]!;
  const get = async () => (await all('SELECT * FROM charging_requests WHERE id = ?', id))[0]!;
  const attempts = async () => (await all('SELECT id FROM callback_attempts WHERE request_id = ?', id)).length;
  return { dispatcher, get, depth, attempts, all };
}

const ok200 = (task: { items: Array<{ id: string }> }): DeliveryResult[] =>
  task.items.map((i) => ({ id: i.id, started_at: Date.now(), duration_ms: 1, http_status: 200, error: null, retry_after_ms: null }));

for (const engine of ENGINES) {
  describe(`dispatcher on ${engine.name}`, { skip: engine.skip }, () => {
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
        const { dispatcher, get, depth } = await setup(t, engine, pool, { AUTHORIZATION_TIMEOUT_MS: '50' });
        dispatcher.start();
        await waitFor(async () => (await get()).state === 'delivered', { what: 'delivery' });
        assert.equal((await get()).decision_status, 'unknown');
        assert.equal((await get()).decision_reason, 'timeout');
        assert.equal(JSON.parse(bodies[0]!).status, 'unknown');
        assert.equal(depth.value, 0);
      });

      it('a crashing decide task gives unknown/worker_error', async (t) => {
        const pool: TaskRunner = {
          run: (task, { name }) => (name === 'decide' ? Promise.reject(new Error('worker exited')) : Promise.resolve(ok200(task as never))),
        };
        const { dispatcher, get } = await setup(t, engine, pool);
        dispatcher.start();
        await waitFor(async () => (await get()).state === 'delivered', { what: 'delivery' });
        assert.equal((await get()).decision_reason, 'worker_error');
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
        const { dispatcher, get, attempts } = await setup(t, engine, pool, { CALLBACK_RETRY_BASE_MS: '1' });
        dispatcher.start();
        await waitFor(async () => (await get()).state === 'delivered', { what: 'delivery' });
        assert.equal((await get()).attempts, 1);
        assert.equal(await attempts(), 1);
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
        const { dispatcher, get, attempts } = await setup(t, engine, pool, { CALLBACK_TIMEOUT_MS: '50' });
        dispatcher.start();
        await waitFor(async () => (await get()).state === 'delivered', { what: 'delivery' });
        assert.equal(started, 1, 'one task ran');
        assert.equal((await get()).attempts, 1);
        assert.equal(await attempts(), 1, 'the cancelled task left no attempt row');
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
        const { dispatcher, get, attempts } = await setup(t, engine, pool, {}, { decided: (d) => decided.push(d), attempted: () => undefined });
        dispatcher.start();
        await waitFor(() => typeof releaseDecide === 'function', { what: 'decide task running' });
        assert.deepEqual(await dispatcher.stop(0), { released: 1 });
        releaseDecide();
        await waitFor(() => dispatcher.probe().inflight === 0, { what: 'the item finished' });
        assert.equal((await get()).state, 'queued');
        assert.equal((await get()).decision_status, null);
        assert.equal(decided.length, 0, 'not counted');
        assert.equal(delivers, 0, 'not delivered');
        assert.equal(await attempts(), 0);
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
        const { dispatcher, get } = await setup(t, engine, pool, { AUTHORIZER_URL: authority.url(), AUTHORIZATION_TIMEOUT_MS: '400' }, {
          decided: (d) => (decision = d as unknown as Record<string, unknown>),
          attempted: () => undefined,
        });
        dispatcher.start();
        await waitFor(async () => (await get()).state === 'delivered', { what: 'delivery' });
        assert.equal(`${(await get()).decision_status}/${(await get()).decision_reason}/${(await get()).decision_source}`, 'allowed/allow_offline/offline_rule');
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
        const { dispatcher, depth, all } = await setup(t, engine, pool, { CALLBACK_TIMEOUT_MS: '40', AUTHORIZATION_TIMEOUT_MS: '40', CALLBACK_MAX_ATTEMPTS: '3', WORKER_CONCURRENCY: '4', CALLBACK_MAX_IN_FLIGHT_PER_ORIGIN: '2' }, undefined, 60, origins);
        dispatcher.start();
        const unfinished = () => all("SELECT state, attempts, claim_count, locked_at, due_at, decision_status, origin FROM charging_requests WHERE state IN ('queued','authorizing','delivering')");
        await waitFor(async () => (await unfinished()).length === 0, { what: 'every request finished', timeoutMs: 30_000 }).catch(async (e) => {
          console.log(await unfinished(), dispatcher.probe());
          throw e;
        });
        await waitFor(() => dispatcher.probe().inflight === 0 && dispatcher.probe().gates === 0, { what: 'nothing held, every task settled' });
        assert.deepEqual(dispatcher.probe(), { inflight: 0, doubleFinishes: 0, decisionSlots: 0, deliverySlots: 0, waiting: 0, gates: 0 });
        assert.equal(depth.value, 0);
        await depth.resync();
        assert.equal(depth.value, 0);
        // Attempt rows only for POSTs reported as made: numbered 1..attempts without gaps.
        const gaps = await all('SELECT id FROM charging_requests r WHERE attempts != (SELECT COUNT(*) FROM callback_attempts a WHERE a.request_id = r.id)');
        assert.equal(gaps.length, 0);
      });
    });
  });
}
