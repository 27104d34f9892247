import assert from 'node:assert/strict';
import test from 'node:test';
import { MiB } from '../test/faults/support/load.ts';
import { overloadRun, summary } from '../test/faults/support/overload.ts';

// The overload scenario of test/faults/overload.test.ts, longer: a SOAK_FLOOD_S second flood
// (default 180) shows whether memory levels off or keeps growing. `npm run soak`.

const FLOOD_S = Number(process.env.SOAK_FLOOD_S ?? 180);
const QUEUE_MAX = 2000;

test(`a ${FLOOD_S} s flood far above capacity: RSS levels off, nothing accepted lost`, { timeout: FLOOD_S * 1000 + 180_000 }, async (t) => {
  const r = await overloadRun(t, {
    queueMax: QUEUE_MAX,
    receiverDelayMs: 100,
    floodConcurrency: 64,
    floodMs: FLOOD_S * 1000,
    calmRequests: 500,
    calmConcurrency: 4,
    deadlineMs: FLOOD_S * 1000 + 150_000,
  });
  const line = summary(r, QUEUE_MAX);
  t.diagnostic(line);
  t.diagnostic(`rss MiB per second: ${JSON.stringify(r.rssTimeline)}`);
  console.log(line);
  console.log(`rss MiB per second: ${JSON.stringify(r.rssTimeline)}`);
  assert.equal(r.lost, 0);
  assert.equal(r.flood.retryAfterMissing, 0);
  assert.ok(r.maxOpenRows <= QUEUE_MAX);
  // Levelled off: the last third of the flood grows by less than 10% of the peak.
  const n = r.rssTimeline.length;
  const third = r.rssTimeline.slice(Math.floor((2 * n) / 3));
  const growth = Math.max(...third) - third[0]!;
  assert.ok(growth * MiB < 0.1 * r.rss.peak, `RSS still growing in the last third of the flood: +${growth} MiB (${JSON.stringify(third)})`);
  assert.ok(r.rss.peak < 1024 * MiB, `peak RSS ${(r.rss.peak / MiB).toFixed(0)} MiB`);
  assert.equal(r.healthAfter, 'UP');
  assert.deepEqual(r.finalExit, { code: 0, signal: null });
});
