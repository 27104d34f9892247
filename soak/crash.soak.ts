import assert from 'node:assert/strict';
import test from 'node:test';
import { crashRun, summary } from '../test/faults/support/crash.ts';
import { faultSeed } from '../test/faults/support/load.ts';

// The crash scenario of test/faults/crash.test.ts, longer: SOAK_KILLS kills (default 25) at
// random moments of a continuous load. `npm run soak`; FAULT_SEED=<n> replays one run.

const KILLS = Number(process.env.SOAK_KILLS ?? 25);

test(`SIGKILLed ${KILLS} times at random points under load: lost = 0`, { timeout: KILLS * 20_000 + 120_000 }, async (t) => {
  const r = await crashRun(t, {
    total: 1_000_000,
    tailMs: 1000,
    kills: KILLS,
    concurrency: 32,
    seed: faultSeed(),
    uptimeMs: [100, 3000],
    deadlineMs: KILLS * 15_000 + 60_000,
  });
  const line = summary(r);
  t.diagnostic(line);
  console.log(line);
  assert.equal(r.lost, 0);
  assert.equal(r.open, 0);
  assert.deepEqual(r.unexplained, []);
  assert.ok(r.duplicates <= r.inflightAtKills.reduce((a, b) => a + b, 0));
  assert.deepEqual(r.finalExit, { code: 0, signal: null });
});
