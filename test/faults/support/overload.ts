import { join } from 'node:path';
import { startReceiver } from '../../support/receiver.ts';
import { exitWithin, processDir, startService } from '../../support/process.ts';
import { waitFor } from '../../support/tmp.ts';
import { callbackCounts, freePort, load, percentile, readDb, rssOf, statesOf, type LoadResult } from './load.ts';

// Overload (issue item 2): a closed-loop flood far above what a slow receiver lets the
// service deliver, then normal traffic again. Shared by test/faults/overload.test.ts and
// soak/overload.ts.

type TestContext = { after: (fn: () => unknown) => void };

export interface OverloadOptions {
  queueMax: number;
  /** Every callback is answered after this long (the slow receiver). */
  receiverDelayMs: number;
  floodConcurrency: number;
  floodMs: number;
  /** After the flood: this many requests at `calmConcurrency`, one at a time each. */
  calmRequests: number;
  calmConcurrency: number;
  deadlineMs: number;
}

export interface OverloadReport {
  flood: LoadResult;
  calm: LoadResult;
  /** Deliveries per second the receiver allowed during the flood (the capacity). */
  deliveredPerSecond: number;
  /** Requests offered per second during the flood. */
  offeredPerSecond: number;
  /** RSS of the service process: before the flood, when the bound was first hit, peak, at the end of the flood, after recovery. */
  rss: { idle: number; atBound: number; peak: number; floodEnd: number; recovered: number };
  /** RSS every second of the flood, MiB. */
  rssTimeline: number[];
  /** Main-thread V8 heap (used / total) and external memory at the end of the flood, from /metrics. */
  heapAtFloodEnd: { used: number; total: number; external: number };
  /** Most open rows seen in the file during the flood. */
  maxOpenRows: number;
  /** ms after the flood stopped until every accepted request was delivered and /health said UP. */
  recoveryMs: number;
  /** p99 latency of the calm requests after recovery, ms. */
  calmP99Ms: number;
  lost: number;
  finalExit: { code: number | null; signal: NodeJS.Signals | null };
  healthAfter: string;
}

export async function overloadRun(t: TestContext, opts: OverloadOptions): Promise<OverloadReport> {
  const deadline = Date.now() + opts.deadlineMs;
  const receiver = await startReceiver((_c, _n, res) => {
    setTimeout(() => res.writeHead(200).end(), opts.receiverDelayMs);
  });
  t.after(() => receiver.close());
  const dbPath = join(processDir(t), 'cg.db');
  const port = await freePort();
  const svc = await startService(t, {
    dbPath,
    env: {
      PORT: String(port),
      QUEUE_MAX_SIZE: String(opts.queueMax),
      WORKERS: '2',
      // 32 callbacks in flight to the one receiver (the per-origin bound): ~128/s at 250 ms.
      WORKER_CONCURRENCY: '64',
      CALLBACK_MAX_IN_FLIGHT_PER_ORIGIN: '32',
      CALLBACK_TIMEOUT_MS: '10000',
    },
  });
  const pid = svc.child.pid!;
  const base = `http://127.0.0.1:${port}`;

  const rss = { idle: rssOf(pid) ?? 0, atBound: 0, peak: 0, floodEnd: 0, recovered: 0 };
  let maxOpenRows = 0;
  const db = readDb(dbPath);
  t.after(() => db.close());
  const openRows = db.prepare("SELECT COUNT(*) FROM charging_requests WHERE state IN ('queued','authorizing','delivering')").pluck();
  let bound = false;
  const rssTimeline: number[] = [];
  let ticks = 0;
  const sampler = setInterval(() => {
    const r = rssOf(pid);
    if (r !== null) rss.peak = Math.max(rss.peak, r);
    if (r !== null && ticks++ % 10 === 0) rssTimeline.push(Math.round(r / (1024 * 1024)));
    maxOpenRows = Math.max(maxOpenRows, openRows.get() as number);
  }, 100);
  t.after(() => clearInterval(sampler));

  const floodStart = Date.now();
  const callsBefore = receiver.calls.length;
  const flood = await load({
    base,
    callbackUrl: receiver.url('/slow'),
    concurrency: opts.floodConcurrency,
    total: Number.MAX_SAFE_INTEGER,
    until: Math.min(deadline, floodStart + opts.floodMs),
    tokenPrefix: 'flood-token-',
    onAnswer: (status) => {
      if (status === 503 && !bound) {
        bound = true;
        rss.atBound = rssOf(pid) ?? 0;
      }
    },
  });
  const floodEnd = Date.now();
  rss.floodEnd = rssOf(pid) ?? 0;
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
  const heapAtFloodEnd = {
    used: gauge('chargegate_nodejs_heap_size_used_bytes'),
    total: gauge('chargegate_nodejs_heap_size_total_bytes'),
    external: gauge('chargegate_nodejs_external_memory_bytes'),
  };
  const floodSeconds = (floodEnd - floodStart) / 1000;
  const deliveredPerSecond = (receiver.calls.length - callsBefore) / floodSeconds;
  const offeredPerSecond = ([...flood.statuses.values()].reduce((a, b) => a + b, 0) + flood.transportErrors) / floodSeconds;

  // Load falls: nothing more arrives until the service says it is healthy again.
  const health = async () => {
    const res = await fetch(`${base}/health`);
    return ((await res.json()) as { status: string }).status;
  };
  const missing = () => {
    const seen = callbackCounts(receiver.calls);
    return flood.accepted.filter((id) => !seen.has(id)).length;
  };
  await waitFor(async () => missing() === 0 && (openRows.get() as number) === 0 && (await health()) === 'UP', {
    timeoutMs: Math.max(10_000, deadline - Date.now()),
    intervalMs: 50,
    what: 'the flood drained and /health UP',
  }).catch((err: Error) => {
    throw new Error(`${err.message}: ${missing()} accepted not called back; db ${JSON.stringify(statesOf(dbPath))}`);
  });
  const recoveryMs = Date.now() - floodEnd;
  clearInterval(sampler);
  rss.recovered = rssOf(pid) ?? 0;

  const calmLatencies: number[] = [];
  const calm = await load({
    base,
    callbackUrl: receiver.url('/calm'),
    concurrency: opts.calmConcurrency,
    total: opts.calmRequests,
    until: deadline,
    tokenPrefix: 'calm-token-',
    onAnswer: (_s, ms) => calmLatencies.push(ms),
  });
  const healthAfter = await health();
  await waitFor(() => {
    const seen = callbackCounts(receiver.calls);
    return calm.accepted.every((id) => seen.has(id));
  }, { timeoutMs: 20_000, what: 'calm requests delivered' });

  svc.kill('SIGTERM');
  const finalExit = await exitWithin(svc, 20_000);
  return {
    flood,
    calm,
    deliveredPerSecond,
    offeredPerSecond,
    rss,
    rssTimeline,
    heapAtFloodEnd,
    maxOpenRows,
    recoveryMs,
    calmP99Ms: percentile(calmLatencies, 99),
    lost: missing(),
    finalExit,
    healthAfter,
  };
}

export function summary(r: OverloadReport, queueMax: number): string {
  const mb = (n: number) => (n / (1024 * 1024)).toFixed(0);
  return (
    `overload: offered=${r.offeredPerSecond.toFixed(0)}/s capacity=${r.deliveredPerSecond.toFixed(0)}/s accepted=${r.flood.accepted.length}` +
    ` statuses=${JSON.stringify([...r.flood.statuses])} max_open_rows=${r.maxOpenRows}/${queueMax} lost=${r.lost}` +
    ` rss_mib={idle:${mb(r.rss.idle)},at_bound:${mb(r.rss.atBound)},peak:${mb(r.rss.peak)},flood_end:${mb(r.rss.floodEnd)},recovered:${mb(r.rss.recovered)}}` +
    ` heap_mib={used:${mb(r.heapAtFloodEnd.used)},total:${mb(r.heapAtFloodEnd.total)},external:${mb(r.heapAtFloodEnd.external)}}` +
    ` recovery_ms=${r.recoveryMs} calm_p99_ms=${r.calmP99Ms.toFixed(0)} calm_statuses=${JSON.stringify([...r.calm.statuses])}`
  );
}
