import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { enter, type GateRef } from '../../src/core/gate.ts';
import { createDeadlineRunner, type TaskRunner } from '../../src/dispatch/deadline.ts';
import { createLane, createOrigins } from '../../src/dispatch/lanes.ts';

// The dispatcher's capacity and deadline parts on their own: their invariants, no threads.

describe('lanes and per-origin bounds', () => {
  it('a lane takes up to its size and refuses to give back more than was taken', () => {
    const lane = createLane(3);
    assert.ok(lane.tryTake(2));
    assert.equal(lane.tryTake(2), false, 'all or nothing');
    assert.ok(lane.tryTake());
    assert.equal(lane.room, 0);
    lane.give(3);
    assert.throws(() => lane.give(), /gave back 1 of 0/);
  });

  it('an origin takes at most its bound, never more than half the lane; others go on', () => {
    const lane = createLane(10);
    const o = createOrigins(lane, 8);
    assert.equal(o.perOrigin, 5, 'capped at half the lane');
    for (let i = 0; i < 5; i++) assert.ok(o.tryTake('http://hung'));
    assert.equal(o.tryTake('http://hung'), false);
    assert.deepEqual(o.saturated(), ['http://hung']);
    assert.equal(o.room('http://ok'), 5);
    for (let i = 0; i < 5; i++) assert.ok(o.tryTake('http://ok'));
    assert.equal(o.tryTake('http://third'), false, 'the lane is full');
    o.give('http://hung', 5);
    o.give('http://ok', 5);
    assert.equal(lane.used, 0);
    assert.throws(() => o.give('http://ok'), /gave back 1 of 0/);
  });

  it('a proven origin borrows up to half the lane; one failed attempt puts it back to its bound', () => {
    const lane = createLane(100);
    const o = createOrigins(lane, 10);
    for (let i = 0; i < 10; i++) assert.ok(o.tryTake('http://a'));
    assert.equal(o.tryTake('http://a'), false, 'unproven: the bound');
    o.attempted('http://a', true, '200', 1);
    assert.equal(o.room('http://a'), 40, 'proven: up to half the lane');
    for (let i = 0; i < 40; i++) assert.ok(o.tryTake('http://a'));
    assert.equal(o.tryTake('http://a'), false);
    o.attempted('http://a', false, 'timeout', 2);
    assert.equal(o.room('http://a'), 0, 'failing: back to the bound (50 in flight drain first)');
    assert.deepEqual(o.classes(), { saturated: 1, failing: 0, healthy: 0 });
    o.give('http://a', 45);
    assert.equal(o.room('http://a'), 5);
    assert.deepEqual(o.classes(), { saturated: 0, failing: 1, healthy: 0 });
  });
});

describe('task deadlines', () => {
  /** A pool whose tasks start when the test says, via the gate as a worker would. */
  function scripted() {
    const pending: Array<{ task: { gate?: GateRef }; resolve: (v: unknown) => void }> = [];
    const pool: TaskRunner = { run: (task) => new Promise((resolve) => pending.push({ task: task as { gate?: GateRef }, resolve })) };
    return { pool, pending };
  }

  it('a task not started by its start deadline is cancelled, and the thread then does not run it', async () => {
    const { pool, pending } = scripted();
    const runner = createDeadlineRunner(pool, { slots: 4, clock: () => 0 });
    const outcome = runner.run('deliver', {}, { startBy: 0, finishBy: 100 });
    assert.deepEqual(await outcome, { kind: 'cancelled' });
    assert.equal(enter(pending[0]!.task.gate), false, 'the thread finds the gate taken');
    assert.equal(runner.busy, 1, 'the slot stays taken until the task settles');
    pending[0]!.resolve(null);
    await new Promise((r) => setImmediate(r));
    assert.equal(runner.busy, 0);
  });

  it('a started task is not cancelled by its start deadline; one silent past finishBy is lost', async () => {
    const { pool, pending } = scripted();
    const runner = createDeadlineRunner(pool, { slots: 4 });
    const start = performance.timeOrigin + performance.now();
    const done = runner.run<number>('deliver', {}, { startBy: start + 20, finishBy: start + 5000 });
    assert.equal(enter(pending[0]!.task.gate), true, 'the thread got there first');
    pending[0]!.resolve(42);
    assert.deepEqual(await done, { kind: 'done', value: 42 });
    const lost = runner.run('deliver', {}, { startBy: start + 10, finishBy: start + 30 });
    assert.equal(enter(pending[1]!.task.gate), true);
    assert.deepEqual(await lost, { kind: 'lost' });
    pending[1]!.resolve([]);
    await new Promise((r) => setImmediate(r));
    assert.equal(runner.busy, 0, 'every slot back once every task settled');
  });

  it('a task that fails (its thread died) is failed, with the reason', async () => {
    const runner = createDeadlineRunner({ run: () => Promise.reject(new Error('worker exited')) }, { slots: 1 });
    const now = performance.timeOrigin + performance.now();
    assert.deepEqual(await runner.run('deliver', {}, { startBy: now + 1000, finishBy: now + 2000 }), { kind: 'failed', error: 'Error: worker exited' });
    assert.equal(runner.busy, 0);
  });
});
