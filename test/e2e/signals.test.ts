import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REPEAT_GRACE_MS, signalAction } from '../../src/runtime/signals.ts';
import { exitWithin, startService } from '../support/process.ts';
import { startHeldReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

const STATION = '123e4567-e89b-12d3-a456-426614174000';

// README "Stopping": one stop request often arrives as several signals (coreutils timeout
// signals the process and then its group; npm forwards the terminal's SIGINT). Those are
// one clean stop, exit 0; only a signal repeated later means "exit now".

describe('stop signals', () => {
  it('the rule: copies within the grace are ignored, a later one exits now', () => {
    assert.equal(signalAction(null, 1000), 'stop');
    assert.equal(signalAction(1000, 1000), 'ignore');
    assert.equal(signalAction(1000, 1000 + REPEAT_GRACE_MS - 1), 'ignore');
    assert.equal(signalAction(1000, 1000 + REPEAT_GRACE_MS), 'exit_now');
  });

  it('a second SIGTERM during the stop is one clean stop: exit 0', { timeout: 60_000 }, async (t) => {
    // A callback held in flight keeps the stop under way while the second signal arrives.
    const { receiver, release } = await startHeldReceiver();
    t.after(() => receiver.close());
    const svc = await startService(t, { env: { CALLBACK_TIMEOUT_MS: '60000', SHUTDOWN_TIMEOUT_MS: '60000' } });
    const accepted = await fetch(`${svc.base}/api/v1/charging-session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ station_id: STATION, driver_token: 'signal-token-0123456789', callback_url: receiver.url() }),
    });
    assert.equal(accepted.status, 202);
    await waitFor(() => receiver.calls.length === 1, { what: 'the callback in flight' });
    svc.kill('SIGTERM');
    await waitFor(() => svc.lines.some((l) => l.msg === 'shutting down'), { what: 'the stop under way' });
    svc.kill('SIGTERM');
    await waitFor(() => svc.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('stop already under way')), { what: 'the second signal' });
    release();
    assert.deepEqual(await exitWithin(svc, 30_000), { code: 0, signal: null }, svc.stderr());
    assert.ok(svc.lines.some((l) => l.msg === 'stopped'));
    assert.ok(!svc.lines.some((l) => typeof l.msg === 'string' && /exiting now/.test(l.msg)));
  });

  it('under coreutils timeout, which signals the process and its group: exit 0', { timeout: 60_000 }, async (t) => {
    const svc = await startService(t, { under: ['timeout', '600'] });
    // timeout passes the SIGTERM it gets on to the service, then to its whole group.
    process.kill(svc.child.pid!, 'SIGTERM');
    assert.deepEqual(await exitWithin(svc, 30_000), { code: 0, signal: null }, svc.stderr());
    assert.ok(svc.lines.some((l) => l.msg === 'stopped'));
  });
});
