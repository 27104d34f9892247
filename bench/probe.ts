// A preload for finding where latency goes, for runs from source (the executable ignores
// NODE_OPTIONS and execArgv by design):
//
//   node --import ./bench/probe.ts bin/chargegate.ts serve
//
// In every thread (main and workers): the event loop's delay histogram at 1 ms resolution
// and the GC pauses this thread saw (PerformanceObserver 'gc'), its peak V8 heap. Printed as
// one JSON line per thread on stderr when the thread ends (`probe {...}`). Not part of the product.
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import { isMainThread, threadId } from 'node:worker_threads';

const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
const gc: number[] = [];
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gc.push(e.duration);
});
obs.observe({ entryTypes: ['gc'] });
const t0 = performance.now();
// The largest V8 heap (committed) and external memory this thread had, sampled every 200 ms.
let heapPeak = 0;
let externalPeak = 0;
setInterval(() => {
  const h = getHeapStatistics();
  heapPeak = Math.max(heapPeak, h.total_heap_size);
  externalPeak = Math.max(externalPeak, h.external_memory);
}, 200).unref();

function report(): void {
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  gc.sort((a, b) => a - b);
  const line = {
    thread: isMainThread ? 'main' : `worker ${threadId}`,
    seconds: Math.round(performance.now() - t0) / 1000,
    loop_delay_ms: {
      p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), p999: ms(delay.percentile(99.9)), max: ms(delay.max),
    },
    heap_peak_mib: Math.round(heapPeak / 1048576),
    external_peak_mib: Math.round(externalPeak / 1048576),
    gc: {
      count: gc.length,
      total_ms: Math.round(gc.reduce((a, b) => a + b, 0)),
      p99_ms: Math.round((gc[Math.floor(gc.length * 0.99)] ?? 0) * 100) / 100,
      max_ms: Math.round((gc.at(-1) ?? 0) * 100) / 100,
      over_5ms: gc.filter((x) => x > 5).length,
    },
  };
  process.stderr.write(`probe ${JSON.stringify(line)}\n`);
}

// PROBE_SNAPSHOT_MS: every thread writes one heap snapshot that long after it started (into
// the working directory), to see what its heap holds mid-run.
const snapAt = Number(process.env.PROBE_SNAPSHOT_MS ?? 0);
if (snapAt > 0) setTimeout(() => process.stderr.write(`probe snapshot ${writeHeapSnapshot()}\n`), snapAt).unref();

if (isMainThread) process.once('exit', report);
else {
  // A worker thread is terminated by the pool, without an 'exit' event in it: report so far, every 5 s.
  setInterval(report, 5000).unref();
}
