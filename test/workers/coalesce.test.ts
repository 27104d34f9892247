import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLimiter } from '../../workers/authorize/limit.ts';

import { startAuthority } from '../support/authority.ts';
import { authorize, item, settings, task } from '../support/authorize.ts';
import { waitFor } from '../support/tmp.ts';

// Protecting the upstream inside a thread: identical lookups in flight share one call,
// and no more than maxConcurrent calls are in flight at once.

describe('coalescing identical lookups', () => {
  it('N identical lookups (one task and a second concurrent task) make 1 upstream call', async (t) => {
    const a = await startAuthority(() => ({ held: true, then: { status: 200, json: { status: 'allowed', reason: 'fleet' } } }));
    t.after(a.close);
    const s = settings(a.url());
    const token = 'coalesce-same-0123456789abcdef';
    const first = authorize(task(s, Array.from({ length: 10 }, () => item(token))));
    await waitFor(() => a.held === 1, { what: 'the first call to arrive' });
    const second = authorize(task(s, [item(token), item(token)]));
    a.release();
    const ds = [...(await first), ...(await second)];
    assert.equal(ds.length, 12);
    assert.ok(ds.every((d) => d.status === 'allowed' && d.reason === 'fleet' && d.source === 'upstream'));
    assert.equal(new Set(ds.map((d) => d.id)).size, 12, 'each request gets its own decision');
    assert.equal(a.calls.length, 1);
  });

  it('the same token at another station, or another token, is its own lookup', async (t) => {
    const a = await startAuthority(() => ({ status: 200, json: { status: 'allowed' } }));
    t.after(a.close);
    const s = settings(a.url());
    await authorize(
      task(s, [
        item('coalesce-x-0123456789abcdef'),
        item('coalesce-x-0123456789abcdef', {}, '9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab'),
        item('coalesce-y-0123456789abcdef'),
      ]),
    );
    assert.equal(a.calls.length, 3);
  });
});

describe('bounded upstream concurrency', () => {
  it('never has more than maxConcurrent calls in flight; the rest wait their turn', async (t) => {
    const a = await startAuthority(() => ({ held: true, then: { status: 200, json: { status: 'allowed' } } }));
    t.after(a.close);
    const s = settings(a.url(), { maxConcurrent: 3 });
    const running = authorize(task(s, Array.from({ length: 10 }, (_, i) => item(`bound-${i}-0123456789abcdef`)), { budgetMs: 10_000 }));
    await waitFor(() => a.held === 3, { what: 'three calls in flight' });
    assert.equal(a.calls.length, 3, 'the other seven wait for a slot');
    // Let them go in waves until all ten have been answered.
    const done = running.then((ds) => ds);
    let settled = false;
    void done.then(() => (settled = true));
    await waitFor(
      () => {
        a.release();
        return settled;
      },
      { what: 'all ten answered' },
    );
    const ds = await done;
    assert.ok(ds.every((d) => d.source === 'upstream' && d.status === 'allowed'));
    assert.equal(a.calls.length, 10);
    assert.equal(a.maxInFlight, 3);
  });

  it('a lookup that cannot get a slot before its deadline is unknown/timeout and does not trip the breaker', async (t) => {
    const a = await startAuthority(() => ({ hang: true }));
    t.after(a.close);
    const s = settings(a.url(), { maxConcurrent: 1, breakerFailures: 2 });
    const ds = await authorize(task(s, [item('slot-a-0123456789abcdef'), item('slot-b-0123456789abcdef')], { budgetMs: 150 }));
    assert.deepEqual(ds.map((d) => d.reason), ['timeout', 'timeout']);
    assert.match(ds[1]!.upstream_error!, /no free upstream slot/);
    assert.equal(a.calls.length, 1);
    const [next] = await authorize(task(s, [item('slot-c-0123456789abcdef')], { budgetMs: 150 }));
    assert.equal(next!.reason, 'timeout', 'one upstream failure so far: still closed');
    assert.equal(a.calls.length, 2);
  });

  it('limiter: FIFO, released slots go to waiters, a resize takes effect', async () => {
    const l = createLimiter(1);
    const r1 = await l.acquire(1000);
    const order: number[] = [];
    const w2 = l.acquire(1000).then((r) => (order.push(2), r));
    const w3 = l.acquire(1000).then((r) => (order.push(3), r));
    assert.equal(l.waiting, 2);
    r1!();
    const r2 = await w2;
    assert.deepEqual(order, [2]);
    l.resize(2);
    const r3 = await w3;
    assert.equal(l.active, 2);
    r2!();
    r3!();
    r3!(); // a second release is ignored
    assert.equal(l.active, 0);
    assert.equal(await l.acquire(0).then((r) => typeof r), 'function', 'a free slot needs no time');
  });
});
