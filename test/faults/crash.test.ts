import assert from 'node:assert/strict';
import test from 'node:test';
import { crashRun, summary } from './support/crash.ts';
import { faultSeed } from './support/load.ts';

// docs/reliability.md, promise "a 202 survives kill -9": under a steady load the service
// is SIGKILLed at random moments four times and restarted at once; every request that got
// a 202 is called back (lost = 0), and every duplicate callback is explained by a kill that
// caught its request in flight. Longer: `npm run soak` (soak/crash.ts).

test('SIGKILLed four times at random points under load: nothing accepted is lost, duplicates only from in-flight work', { timeout: 120_000 }, async (t) => {
  const seed = faultSeed();
  const r = await crashRun(t, { total: 20_000, tailMs: 500, kills: 4, concurrency: 32, seed, uptimeMs: [300, 1500], deadlineMs: 80_000 });
  const line = summary(r);
  t.diagnostic(line);
  console.log(line);

  assert.ok(r.load.accepted.length >= 100, `enough requests were accepted to mean something (${r.load.accepted.length})`);
  assert.ok(r.inflightAtKills.some((n) => n > 0), 'at least one kill caught work in flight');
  assert.equal(r.lost, 0, 'every 202 was called back');
  assert.equal(r.open, 0, 'every stored row is delivered');
  assert.equal(r.stored, r.load.accepted.length + r.committedWithout202, 'the file holds the accepted requests and those whose 202 a kill cut off, nothing else');
  assert.deepEqual(r.unexplained, [], 'every extra callback is a request the kill caught in flight');
  assert.ok(r.duplicates <= r.inflightAtKills.reduce((a, b) => a + b, 0), 'duplicates are bounded by what was in flight at the kills');
  assert.deepEqual([...r.load.statuses.keys()].filter((s) => s !== 202), [], 'a live service only ever answered 202');
  assert.deepEqual(r.finalExit, { code: 0, signal: null }, 'the last run stops gracefully');
  const leaks = r.logLines.filter((l) => /fault-token-\d{10}/.test(l));
  assert.deepEqual(leaks, [], 'no log line carries a full driver token');
});
