import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { breaker, createBreakerState } from '../../src/core/breaker.ts';
import { createPool } from '../../src/dispatch/pool.ts';

import { startAuthority } from '../support/authority.ts';
import { authorize, item, settings, task } from '../support/authorize.ts';

// The circuit breaker: opens after N consecutive failures, refuses at once while open
// (the offline rules decide without waiting), lets one probe through after the open
// period, closes on its success and re-opens on its failure. Time is the tasks' `now`.

describe('breaker (shared state, injected time)', () => {
  it('opens after N consecutive failures; a success in between resets the count', () => {
    const b = breaker(createBreakerState(), { failures: 3, openMs: 1000 });
    b.failure(0, false);
    b.failure(1, false);
    b.success();
    b.failure(2, false);
    b.failure(3, false);
    assert.equal(b.state(4), 'closed', 'two failures since the last success');
    assert.equal(b.admit(4, 100), 'closed');
    b.failure(5, false);
    assert.equal(b.state(6), 'open');
    assert.equal(b.admit(6, 100), 'refused');
    assert.equal(b.opened, 1);
  });

  it('after openMs lets exactly one probe through; its success closes, its failure re-opens', () => {
    const b = breaker(createBreakerState(), { failures: 1, openMs: 1000 });
    b.failure(0, false);
    assert.equal(b.admit(999, 100), 'refused');
    assert.equal(b.state(1000), 'half_open');
    assert.equal(b.admit(1000, 100), 'probe');
    assert.equal(b.admit(1001, 100), 'refused', 'one probe at a time');
    b.failure(1050, true);
    assert.equal(b.state(1051), 'open', 'a failed probe re-opens');
    assert.equal(b.admit(2049, 100), 'refused');
    assert.equal(b.admit(2050, 100), 'probe');
    b.success();
    assert.equal(b.state(2060), 'closed');
    assert.equal(b.admit(2060, 100), 'closed');
    assert.equal(b.opened, 2);
  });

  it('a probe that never reports expires, so another caller may probe', () => {
    const b = breaker(createBreakerState(), { failures: 1, openMs: 10 });
    b.failure(0, false);
    assert.equal(b.admit(10, 50), 'probe');
    assert.equal(b.admit(59, 50), 'refused');
    assert.equal(b.admit(61, 50), 'probe');
  });

  it('a late failure of a call started before it opened does not extend the open period', () => {
    const b = breaker(createBreakerState(), { failures: 1, openMs: 100 });
    b.failure(0, false);
    b.failure(90, false);
    assert.equal(b.state(100), 'half_open');
  });
});

describe('breaker in front of a real authority', () => {
  it('opens on 500s, then decides by the offline rules at once without calling; closes after a good probe', async (t) => {
    let healthy = false;
    const a = await startAuthority(() => (healthy ? { status: 200, json: { status: 'allowed' } } : { status: 500 }));
    t.after(a.close);
    const s = settings(a.url(), { breakerFailures: 3, breakerOpenMs: 10_000 });
    const T = Date.now();
    for (let i = 0; i < 3; i++) {
      const [d] = await authorize(task(s, [item(`brk-fail-${i}-0123456789abcdef`)], { now: T + i }));
      assert.equal(d!.reason, 'upstream_error');
    }
    assert.equal(a.calls.length, 3);
    assert.equal(breaker(s.breakerState, { failures: 3, openMs: 10_000 }).state(T + 3), 'open');

    // Open: no call, decided at once by the offline rules.
    const [offline, unknown] = await authorize(
      task(s, [item('brk-open-a-0123456789abcdef', { offline: 'allow_offline', listed: true }), item('brk-open-b-0123456789abcdef')], { now: T + 5000, budgetMs: 60_000 }),
    );
    assert.equal(`${offline!.status}/${offline!.reason}/${offline!.source}`, 'allowed/allow_offline/offline_rule');
    assert.equal(`${unknown!.status}/${unknown!.reason}/${unknown!.source}`, 'unknown/circuit_open/offline_rule');
    assert.equal(a.calls.length, 3, 'nothing reached the authority while open');

    // Half-open with the authority still failing: the probe fails and the breaker re-opens.
    // (Times leave seconds of slack: a task's clock is its `now` plus what it has spent.)
    const [p1] = await authorize(task(s, [item('brk-probe-1-0123456789abcdef')], { now: T + 15_000 }));
    assert.equal(p1!.reason, 'upstream_error');
    assert.equal(a.calls.length, 4, 'one probe');
    const [still] = await authorize(task(s, [item('brk-probe-2-0123456789abcdef')], { now: T + 15_020 }));
    assert.equal(still!.reason, 'circuit_open');

    // The authority recovers; the next probe after the open period closes the breaker.
    healthy = true;
    const [p2] = await authorize(task(s, [item('brk-probe-3-0123456789abcdef')], { now: T + 40_000 }));
    assert.equal(`${p2!.status}/${p2!.source}`, 'allowed/upstream');
    const [after] = await authorize(task(s, [item('brk-after-0123456789abcdef')], { now: T + 40_100 }));
    assert.equal(after!.source, 'upstream');
    assert.equal(a.calls.length, 6);
  });

  it('timeouts count as failures: a hanging authority opens it', async (t) => {
    const a = await startAuthority(() => ({ hang: true }));
    t.after(a.close);
    const s = settings(a.url(), { breakerFailures: 2, breakerOpenMs: 60_000 });
    const ds = [];
    for (let i = 0; i < 4; i++) ds.push((await authorize(task(s, [item(`brk-hang-${i}-0123456789abcdef`)], { budgetMs: 150 })))[0]!.reason);
    assert.deepEqual(ds, ['timeout', 'timeout', 'circuit_open', 'circuit_open']);
    assert.equal(a.calls.length, 2);
  });

  it('worker threads share one breaker (the main thread sees what they did)', async (t) => {
    const a = await startAuthority(() => ({ status: 503 }));
    t.after(a.close);
    const pool = createPool({ filename: fileURLToPath(new URL('../../workers/task.ts', import.meta.url)), threads: 2, concurrency: 4 });
    t.after(() => pool.destroy());
    const s = settings(a.url(), { breakerFailures: 4, breakerOpenMs: 60_000 });
    await Promise.all([0, 1, 2, 3].map((i) => pool.run(task(s, [item(`brk-pool-${i}-0123456789abcdef`)]), { name: 'authorize' })));
    assert.equal(breaker(s.breakerState, { failures: 4, openMs: 60_000 }).state(Date.now()), 'open', 'opened by failures seen in the threads');
    const [d] = (await pool.run(task(s, [item('brk-pool-x-0123456789abcdef')]), { name: 'authorize' })) as Array<{ reason: string }>;
    assert.equal(d!.reason, 'circuit_open');
    assert.equal(a.calls.length, 4);
  });
});
