// A preload that timestamps each request's thread hand-offs, for runs from source (the
// executable ignores NODE_OPTIONS and execArgv by design); not part of the product:
//
//   TRACE_FILE=/tmp/t.jsonl node --import ./bench/trace.ts bin/chargegate.ts serve
//
// bench/hops.ts starts it, loads it and joins the trace with the generator's own times.
// Every time is wall-clock ms (performance.timeOrigin + now(): one clock for all processes).
// Main thread: each decide/deliver task as it is handed to piscina and as its answer is
// back (with its items' ids, and for deliveries the callback URL and the worker's
// `started_at` of each POST), each WAL fsync's begin and end. Every thread: GC pauses and
// event-loop stalls over 3 ms (a 1 ms interval timer firing late), with their start time.
// Lines go to TRACE_FILE as JSON, appended every second and when the thread ends.
import { appendFileSync } from 'node:fs';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { PerformanceObserver } from 'node:perf_hooks';
import { isMainThread, threadId } from 'node:worker_threads';

const file = process.env.TRACE_FILE;
const wall = () => performance.timeOrigin + performance.now();
let lines: string[] = [];
const emit = (o: object) => lines.push(JSON.stringify(o));
const thread = isMainThread ? 'main' : `w${threadId}`;

function drain(): void {
  if (!file || lines.length === 0) return;
  appendFileSync(file, `${lines.join('\n')}\n`);
  lines = [];
}

if (file) {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration >= 1) emit({ k: 'gc', th: thread, t: performance.timeOrigin + e.startTime, d: e.duration });
    }
  }).observe({ entryTypes: ['gc'] });
  // With the thread's CPU time over the stall: ~d means it was busy (long work, GC), ~0 that
  // it was runnable but not running (another thread or process had the core).
  let last = performance.now();
  let lastCpu = process.threadCpuUsage();
  setInterval(() => {
    const n = performance.now();
    const cpu = process.threadCpuUsage();
    if (n - last > 4) {
      const used = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000;
      emit({ k: 'stall', th: thread, t: performance.timeOrigin + last + 1, d: n - last - 1, cpu: used });
    }
    last = n;
    lastCpu = cpu;
  }, 1).unref();
  setInterval(drain, 1000).unref();
  if (isMainThread) process.once('exit', drain);

  if (isMainThread) {
    const { Piscina } = await import('piscina');
    type Task = { items?: Array<{ id: string; url?: string }> };
    const run = Piscina.prototype.run;
    Piscina.prototype.run = function (this: InstanceType<typeof Piscina>, task: Task, opts?: { name?: string }) {
      const p = run.call(this, task, opts);
      const name = opts?.name;
      if ((name === 'decide' || name === 'deliver') && task?.items) {
        const ids = task.items.map((it) => it.id);
        const urls = name === 'deliver' ? task.items.map((it) => it.url) : undefined;
        emit({ k: `${name}_sent`, t: wall(), ids, ...(urls ? { urls } : {}) });
        p.then((v: unknown) => {
          const started = Array.isArray(v) && name === 'deliver' ? v.map((r: { id: string; started_at: number }) => [r.id, r.started_at]) : undefined;
          emit({ k: `${name}_back`, t: wall(), ids, ...(started ? { started } : {}) });
        }, () => undefined);
      }
      return p;
    } as typeof run;

    // The committer's WAL fsync (src/queue/committer.ts imports fsync from node:fs).
    const fsync = fs.fsync;
    (fs as { fsync: unknown }).fsync = (fd: number, cb: (err: unknown) => void) => {
      const t = wall();
      fsync(fd, (err) => {
        emit({ k: 'fsync', t, d: wall() - t });
        cb(err);
      });
    };
    syncBuiltinESMExports();
  }
}
