// Which hand-off the slow requests wait in: chargegate run from source with bench/trace.ts
// preloaded, open-loop load at a fixed rate (bench/openloop.ts, its per-request times
// dumped), both joined by request. Variants alternate by round as in bench/tail.ts.
//
//   node bench/hops.ts [--rate 500] [--seconds 10] [--rounds 3] [--variant 'name:{"WORKERS":"1"}' ...]
//
// Per request i, on one wall clock (ms):
//   accept     due -> 202 received by the generator (commit + WAL fsync + answer)
//   to_decide  due -> its decide task handed to piscina (accept, fsync, adopt)
//   decide     decide task handed -> its answer back on the main thread
//   record     decide answer back -> deliver task handed (decision commit + fsync)
//   to_post    deliver task handed -> the worker starts the POST (ms resolution)
//   post       POST started -> callback received by the generator
//   total      due -> callback received
// A variant's `@flags` are node/V8 flags for that run. Printed per variant and round: p50/p99/max of each hop over all requests, and over the
// slowest 1 % (by total) the median of each hop, how often each hop was the largest, and
// how many overlapped a main-thread stall or GC pause or a worker's (from the trace); the
// p99 of total per second of the run; each thread's CPU and time waiting for the core.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, startContestant } from './contestants.ts';
import { cores, median, output, parseVariant, percentile, pinSelf, pinned } from './lib.ts';

const { values: o } = parseArgs({
  options: {
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    variant: { type: 'string', multiple: true, default: ['default:{}'] },
    /** Keep the trace and dump files in this folder (to look at one episode). */
    keep: { type: 'string' },
  },
});
const variants = o.variant!.map(parseVariant);
const HOPS = ['accept', 'to_decide', 'decide', 'record', 'to_post', 'post', 'total'] as const;
type Hop = (typeof HOPS)[number];

interface Span { th: string; t: number; d: number; k: string; cpu?: number }

function analyse(traceFile: string, dumpFile: string) {
  const decideSent = new Map<string, number>();
  const decideBack = new Map<string, number>();
  const deliverSent = new Map<string, number>();
  const postStarted = new Map<string, number>();
  const idOf = new Map<number, string>();
  const spans: Span[] = [];
  const fsyncs: number[] = [];
  for (const line of readFileSync(traceFile, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line);
    if (e.k === 'decide_sent') for (const id of e.ids) decideSent.set(id, e.t);
    else if (e.k === 'decide_back') for (const id of e.ids) decideBack.set(id, e.t);
    else if (e.k === 'deliver_sent') {
      e.ids.forEach((id: string, j: number) => {
        if (!deliverSent.has(id)) deliverSent.set(id, e.t);
        const i = Number(/\/cb\/(\d+)$/.exec(e.urls[j])?.[1]);
        if (Number.isInteger(i)) idOf.set(i, id);
      });
    } else if (e.k === 'deliver_back') {
      for (const [id, s] of e.started ?? []) if (!postStarted.has(id)) postStarted.set(id, s);
    } else if (e.k === 'fsync') fsyncs.push(e.d);
    else if (e.k === 'gc' || e.k === 'stall') spans.push(e);
  }
  const rows: Array<Record<Hop, number> & { due: number; end: number }> = [];
  for (const line of readFileSync(dumpFile, 'utf8').split('\n')) {
    if (!line) continue;
    const [i, due, answered, called] = JSON.parse(line) as [number, number, number | null, number | null];
    const id = idOf.get(i);
    if (!id || answered === null || called === null) continue;
    const ds = decideSent.get(id);
    const db = decideBack.get(id);
    const vs = deliverSent.get(id);
    const ps = postStarted.get(id);
    if (ds === undefined || db === undefined || vs === undefined || ps === undefined) continue;
    rows.push({
      due, end: called,
      accept: answered - due, to_decide: ds - due, decide: db - ds, record: vs - db, to_post: ps - vs, post: called - ps,
      total: called - due,
    });
  }
  const r2 = (x: number) => Math.round(x * 10) / 10;
  // Only what happened while measured requests were in flight (not the start from source).
  const from = Math.min(...rows.map((r) => r.due));
  const to = Math.max(...rows.map((r) => r.end));
  const inWindow = spans.filter((s) => s.t + s.d > from && s.t < to);
  spans.length = 0;
  spans.push(...inWindow);
  const all = Object.fromEntries(HOPS.map((h) => {
    const xs = rows.map((r) => r[h]).sort((a, b) => a - b);
    return [h, `${r2(percentile(xs, 0.5))}/${r2(percentile(xs, 0.99))}/${r2(xs.at(-1) ?? NaN)}`];
  }));
  // POST->callback p99 per second of the measured run: is the tail spread over the run, or
  // in its first seconds (a fresh process's code still being compiled and optimized)?
  const bySecond: number[] = [];
  for (let sec = 0; ; sec++) {
    const xs = rows.filter((r) => Math.floor((r.due - from) / 1000) === sec).map((r) => r.total).sort((a, b) => a - b);
    if (xs.length === 0) break;
    bySecond.push(r2(percentile(xs, 0.99)));
  }
  const slow = [...rows].sort((a, b) => b.total - a.total).slice(0, Math.max(1, Math.ceil(rows.length / 100)));
  const slowMedian = Object.fromEntries(HOPS.map((h) => [h, r2(median(slow.map((r) => r[h])))]));
  const largest: Record<string, number> = {};
  for (const r of slow) {
    const h = HOPS.slice(1, 6).reduce((a, b) => (r[b] > r[a] ? b : a));
    largest[h] = (largest[h] ?? 0) + 1;
  }
  // Over the slow requests' lifetimes: stalls / GC pauses of each thread kind, in ms overlapping.
  const overlap = (th: (s: Span) => boolean) => {
    let n = 0;
    for (const r of slow) if (spans.some((s) => th(s) && s.t < r.end && s.t + s.d > r.due)) n++;
    return n;
  };
  const sum = (k: string, main: boolean) => r2(spans.filter((s) => s.k === k && (s.th === 'main') === main).reduce((a, s) => a + s.d, 0));
  const longest = (k: string, main: boolean) => r2(Math.max(0, ...spans.filter((s) => s.k === k && (s.th === 'main') === main).map((s) => s.d)));
  fsyncs.sort((a, b) => a - b);
  // For each slow request: the main thread's stall time inside its lifetime, and the CPU it used then.
  const mainStalls = spans.filter((s) => s.k === 'stall' && s.th === 'main');
  const stallIn = (r: { due: number; end: number }) => {
    let d = 0;
    let cpu = 0;
    for (const s of mainStalls) {
      const lo = Math.max(s.t, r.due);
      const hi = Math.min(s.t + s.d, r.end);
      if (hi > lo) {
        d += hi - lo;
        cpu += (s.cpu ?? 0) * ((hi - lo) / s.d);
      }
    }
    return { d, cpu };
  };
  const slowStall = slow.map(stallIn);
  const stallCpu = mainStalls.reduce((a, s) => a + (s.cpu ?? 0), 0);
  return {
    n: rows.length, all, total_p99_by_second: bySecond, slow: { n: slow.length, median: slowMedian, largest,
      with_main_stall: overlap((s) => s.k === 'stall' && s.th === 'main'), with_main_gc: overlap((s) => s.k === 'gc' && s.th === 'main'),
      main_stall_in_life_ms: r2(median(slowStall.map((x) => x.d))),
      main_cpu_in_those_stalls_ms: r2(median(slowStall.map((x) => x.cpu))),
      with_worker_stall: overlap((s) => s.k === 'stall' && s.th !== 'main'), with_worker_gc: overlap((s) => s.k === 'gc' && s.th !== 'main') },
    main: { stall_cpu_ms: r2(stallCpu), stall_ms: sum('stall', true), stall_max: longest('stall', true), gc_ms: sum('gc', true), gc_max: longest('gc', true) },
    workers: { stall_ms: sum('stall', false), stall_max: longest('stall', false), gc_ms: sum('gc', false), gc_max: longest('gc', false) },
    fsync: { n: fsyncs.length, p50: r2(percentile(fsyncs, 0.5)), p99: r2(percentile(fsyncs, 0.99)), max: r2(fsyncs.at(-1) ?? NaN) },
  };
}

/** Per thread name: CPU ms, ms waiting runnable for a core, and timeslices (/proc/…/schedstat). */
function sched(pid: number): Record<string, [number, number, number]> {
  const out: Record<string, [number, number, number]> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim().replace(/[0-9]+$/, '');
      const [run, wait, slices] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ').map(Number);
      const a = (out[comm] ??= [0, 0, 0]);
      a[0] += run! / 1e6;
      a[1] += wait! / 1e6;
      a[2] += slices!;
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** Busy ms of one CPU so far (/proc/stat: everything but idle and iowait), at USER_HZ 100. */
function cpuBusy(cpu: string): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `))!;
  const f = line.split(/\s+/).slice(1).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) * 10;
}

function schedDelta(a: Record<string, [number, number, number]>, b: Record<string, [number, number, number]>) {
  const out: Record<string, { cpu: number; wait: number; slices: number }> = {};
  for (const [k, v] of Object.entries(b)) {
    const p = a[k] ?? [0, 0, 0];
    out[k] = { cpu: Math.round(v[0] - p[0]), wait: Math.round(v[1] - p[1]), slices: v[2] - p[2] };
  }
  return out;
}

pinSelf();
const work = mkdtempSync(join(tmpdir(), 'cg-hops-'));
const files = o.keep ?? work;
// A variant's `@flags` (space-separated) are given to node: V8 flags tried from source.
const command = (flags: string | undefined) => JSON.stringify([process.execPath, ...(flags ? flags.split(' ') : []),
  '--import', join(ROOT, 'bench', 'trace.ts'), join(ROOT, 'bin', 'chargegate.ts'), 'serve']);
try {
  for (let r = 0; r < Number(o.rounds); r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(k + r) % variants.length]!;
      const trace = join(files, `trace-${r}-${v.name}.jsonl`);
      const dump = join(files, `dump-${r}-${v.name}.jsonl`);
      const { '@flags': flags, ...env } = v.env;
      process.env.BENCH_CG_CMD = command(flags);
      const c = await startContestant('chargegate', work, { env: { ...env, TRACE_FILE: trace, LOG_LEVEL: env.LOG_LEVEL ?? 'info' } });
      const pid = c.pids[0]!;
      const s0 = sched(pid);
      const busy0 = cpuBusy(cores?.server ?? '0');
      const [cmd, args] = pinned('load', process.execPath, [join(ROOT, 'bench', 'openloop.ts'),
        JSON.stringify({ port: c.port, rate: Number(o.rate), seconds: Number(o.seconds), warmup: Number(o.warmup), callbacks: true, dump })]);
      const res = JSON.parse(await output(cmd, args));
      const threads = schedDelta(s0, sched(pid));
      const ours = Object.values(threads).reduce((x, t) => x + t.cpu, 0);
      // What the server core did that was not this process: the neighbours' share.
      const others = cpuBusy(cores?.server ?? '0') - busy0 - ours;
      await c.stop();
      const a = analyse(trace, dump);
      console.log(JSON.stringify({ round: r + 1, variant: v.name, send_lag_max_ms: res.send_lag_max_ms, missing: res.callback.missing, ...a, threads, server_core_others_ms: Math.round(others) }));
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
