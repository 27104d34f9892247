// npm run bench: the chargegate executable against bare Hapi + joi and the peer (Hapi + joi +
// BullMQ on Redis), one run, rounds alternating the contestants, medians and ratios. Each
// contestant's whole process tree runs on one core, the load generator and the receivers
// on the other (taskset). Loopback only. Prints a table and writes bench/results.json.
//
// Knobs: BENCH_SECONDS (10, per measured load), BENCH_ROUNDS (3), BENCH_DRAIN (100000),
// BENCH_STARTS (5 starts per contestant), BENCH_CONNECTIONS ("100,1000"), BENCH_RATES
// ("500,2000"), BENCH_OPEN_WARMUP (3: seconds of open-loop load sent before measuring),
// BENCH_PEER=0 (leave the peer out), BENCH_TOOL=autocannon (even with wrk),
// BENCH_OUT (results path), BENCH_CG_ENV (JSON: extra settings for chargegate, for tuning runs),
// BENCH_PHASES ("start,saturation,open,drain,scaling"; scaling = bench/scaling.ts, its
// own SCALING_* knobs), BENCH_NICE (-10: the priority of contestants
// and load when root; 0 leaves it alone), BENCH_PG=0 (leave the PostgreSQL contestants out),
// BENCH_PG_URL (their server: an admin connection; default postgres://postgres@127.0.0.1:5432).
// PostgreSQL contestants (pg1, pg2: bench/contestants.ts) run the start, saturation and open
// phases; the drain phase fills a SQLite file, so it is SQLite's only.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  BIN, prefill, peerReady, PG_NAMES, pgReady, ROOT, startContestant, startRedis, STATION, TOKEN, type Name,
} from './contestants.ts';
import { cores, median, niceness, output, pinned, pinSelf, sleep, start, timerFloor, type Child } from './lib.ts';
import { printTable } from './report.ts';
import { loadTool, saturate, type Saturation } from './saturate.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DRAIN_N = Number(process.env.BENCH_DRAIN ?? 100_000);
const STARTS = Number(process.env.BENCH_STARTS ?? 5);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? '100,1000').split(',').map(Number);
const RATES = (process.env.BENCH_RATES ?? '500,2000').split(',').map(Number);
const OUT = process.env.BENCH_OUT ?? join(ROOT, 'bench', 'results.json');
const PHASES = new Set((process.env.BENCH_PHASES ?? 'start,saturation,open,drain,scaling').split(','));
const CG_ENV = JSON.parse(process.env.BENCH_CG_ENV ?? '{}') as Record<string, string>;
const WARMUP = Math.min(2, SECONDS);
// Open loop: requests before this are sent but not measured. A fresh process's first 1-2 s
// of load run code V8 has not optimized yet; with 1 s, that second held the slowest 1 % of
// a 10 s run (bench/hops.ts, docs/performance.md): the p99 was a start-up figure.
const OPEN_WARMUP = Number(process.env.BENCH_OPEN_WARMUP ?? Math.min(3, SECONDS));

pinSelf();
const work = mkdtempSync(join(tmpdir(), 'cg-bench-'));
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);
const peerWhy = peerReady();
if (peerWhy) log(`peer left out: ${peerWhy}`);
const pgWhy = await pgReady();
if (pgWhy) log(`PostgreSQL contestants left out: ${pgWhy}`);
const NAMES: Name[] = [...(peerWhy ? ['chargegate', 'bare'] as Name[] : ['chargegate', 'bare', 'peer'] as Name[]),
  ...(pgWhy ? [] : ['pg1', 'pg2'] as Name[])];
/** Round r starts with a different contestant, so none always runs first (or after the same one). */
const order = (r: number): Name[] => NAMES.map((_, i) => NAMES[(i + r) % NAMES.length]!);

const results: Record<string, any> = {
  when: new Date().toISOString(),
  method: {
    seconds: SECONDS, rounds: ROUNDS, warmup_s: WARMUP, open_warmup_s: OPEN_WARMUP, tool: loadTool, pinned: cores, nice: niceness, contestants: NAMES,
    chargegate_env: CG_ENV,
  },
  peer_left_out: peerWhy,
  pg_left_out: pgWhy,
};

// One callback receiver for the saturation phases, on the load core.
async function receiver(): Promise<Child> {
  const [cmd, args] = pinned('load', process.execPath, [join(ROOT, 'bench', 'receiver.ts')]);
  return start(cmd, args, {});
}
async function received(rx: Child): Promise<number> {
  return ((await (await fetch(`http://127.0.0.1:${rx.port}/stats`)).json()) as { received: number }).received;
}
const body = (port: number) =>
  JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: `http://127.0.0.1:${port}/cb` });
// Saturation measures accepting: chargegate's queue bound is lifted there as the peer has none.
const envFor = (name: Name, extra: Record<string, string> = {}) =>
  (name === 'chargegate' || PG_NAMES[name] ? { ...CG_ENV, ...extra } : {});

/**
 * Saturation of every port of a contestant at once, the connections split between them (one
 * generator each, all on the load core): 2xx/s, non-2xx and errors add up; latencies are the
 * worst port's.
 */
async function saturateAll(ports: number[], connections: number, seconds: number, rxPort: number): Promise<Saturation> {
  const per = Math.max(1, Math.round(connections / ports.length));
  const xs = await Promise.all(ports.map((p) => saturate(work, p, per, seconds, body(rxPort))));
  if (xs.length === 1) return xs[0]!;
  const sum = (k: 'rps2xx' | 'non2xx' | 'errors') => xs.reduce((n, x) => n + x[k], 0);
  const worst = (k: 'p50' | 'p99' | 'max') => Math.max(...xs.map((x) => x[k]));
  return {
    tool: xs[0]!.tool, seconds: Math.max(...xs.map((x) => x.seconds)), rps2xx: sum('rps2xx'), non2xx: sum('non2xx'),
    errors: sum('errors'), p50: worst('p50'), p99: worst('p99'), max: worst('max'),
  };
}

async function startupPhase() {
  const runs: Record<string, Array<{ ready_ms: number; rss_idle_mib: number }>> = {};
  for (let r = 0; r < STARTS; r++) {
    for (const name of order(r)) {
      const c = await startContestant(name, work, { env: envFor(name) });
      await sleep(1000);
      (runs[name] ??= []).push({ ready_ms: Math.round(c.readyMs), rss_idle_mib: Math.round(c.rss().now) });
      await c.stop();
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, xs] of Object.entries(runs)) {
    out[name] = { ready_ms: median(xs.map((x) => x.ready_ms)), rss_idle_mib: median(xs.map((x) => x.rss_idle_mib)), runs: xs };
    log(`start ${name}: ${(out[name] as any).ready_ms} ms to listening, ${(out[name] as any).rss_idle_mib} MiB idle`);
  }
  return out;
}

async function saturationPhase(connections: number) {
  const rx = await receiver();
  const runs: Record<string, any[]> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of order(r)) {
      const c = await startContestant(name, work, { env: envFor(name, { QUEUE_MAX_SIZE: '10000000' }) });
      await saturateAll(c.ports, connections, WARMUP, rx.port);
      const before = await received(rx);
      const s = await saturateAll(c.ports, connections, SECONDS, rx.port);
      const callbacks = (await received(rx)) - before;
      const rss = c.rss();
      await c.stop();
      const perS = Math.round(callbacks / s.seconds);
      (runs[name] ??= []).push({ ...s, callbacks_per_s: perS, rss_peak_mib: Math.round(rss.peak) });
      log(`saturation @${connections} round ${r + 1} ${name}: ${s.rps2xx}/s p50 ${s.p50} p99 ${s.p99} max ${s.max} ms` +
        ` non2xx ${s.non2xx} errors ${s.errors}, callbacks ${perS}/s, RSS peak ${Math.round(rss.peak)} MiB`);
    }
  }
  await rx.stop();
  return summarize(runs, ['rps2xx', 'p50', 'p99', 'max', 'callbacks_per_s', 'rss_peak_mib', 'non2xx', 'errors']);
}

async function openLoopPhase(rate: number) {
  const runs: Record<string, any[]> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of order(r)) {
      const c = await startContestant(name, work, { env: envFor(name) });
      const [cmd, args] = pinned('load', process.execPath, [join(ROOT, 'bench', 'openloop.ts'),
        JSON.stringify({ ports: c.ports, rate, seconds: SECONDS, warmup: OPEN_WARMUP, callbacks: name !== 'bare' })]);
      const o = JSON.parse(await output(cmd, args));
      const rss = c.rss();
      await c.stop();
      const cb = o.callback;
      (runs[name] ??= []).push({
        accept_p50: o.accept.p50, accept_p99: o.accept.p99, accept_max: o.accept.max,
        callback_p50: cb?.p50 ?? null, callback_p99: cb?.p99 ?? null, callback_max: cb?.max ?? null,
        callbacks_missing: cb?.missing ?? null,
        non2xx: o.non2xx, errors: o.errors, send_lag_max_ms: o.send_lag_max_ms, rss_peak_mib: Math.round(rss.peak),
      });
      log(`open loop ${rate}/s round ${r + 1} ${name}: accept p50/p99/max ${o.accept.p50}/${o.accept.p99}/${o.accept.max} ms` +
        (cb ? `, POST->callback ${cb.p50}/${cb.p99}/${cb.max} ms, missing ${cb.missing}` : '') +
        `, non2xx ${o.non2xx} errors ${o.errors}`);
    }
  }
  return summarize(runs, ['accept_p50', 'accept_p99', 'accept_max', 'callback_p50', 'callback_p99', 'callback_max', 'callbacks_missing',
    'rss_peak_mib', 'non2xx', 'errors', 'send_lag_max_ms']);
}

/** The medians over rounds of each figure, per contestant, and every round's figures. */
function summarize(runs: Record<string, any[]>, keys: string[]) {
  const out: Record<string, any> = {};
  for (const [name, xs] of Object.entries(runs)) {
    const m: Record<string, number | null> = {};
    for (const k of keys) {
      const v = xs.map((x) => x[k]).filter((x) => typeof x === 'number' && Number.isFinite(x));
      m[k] = v.length ? median(v) : null;
    }
    out[name] = { median: m, rounds: xs };
  }
  return out;
}

/** Start the contestant on n queued requests; the time until the receiver has n callbacks. */
async function drainPhase(name: 'chargegate' | 'peer') {
  const rx = await receiver();
  const url = `http://127.0.0.1:${rx.port}/cb`;
  let redis = null;
  let db: string | undefined;
  if (name === 'chargegate') db = prefill(work, DRAIN_N, url);
  else {
    redis = await startRedis(work);
    const fill = join(ROOT, 'bench', 'peer', 'fill.mjs');
    await output(process.execPath, [fill, String(DRAIN_N), url], { REDIS_PORT: String(redis.port) });
  }
  const t0 = performance.now();
  const env = envFor(name, { QUEUE_MAX_SIZE: String(DRAIN_N * 2) });
  const c = await startContestant(name, work, { db, redis: redis ?? undefined, env });
  const deadline = t0 + 300_000;
  let done = 0;
  while ((done = await received(rx)) < DRAIN_N && performance.now() < deadline) await sleep(100);
  const seconds = (performance.now() - t0) / 1000;
  const rss = c.rss();
  await c.stop();
  await redis?.stop();
  await rx.stop();
  if (db) {
    const check = new Database(db, { readonly: true });
    const delivered = check.prepare("SELECT COUNT(*) FROM charging_requests WHERE state = 'delivered'").pluck().get();
    check.close();
    log(`drain ${name}: database says ${delivered} delivered`);
  }
  log(`drain ${name}: ${done}/${DRAIN_N} callbacks in ${seconds.toFixed(1)} s, RSS peak ${Math.round(rss.peak)} MiB`);
  return {
    requests: DRAIN_N, delivered: done, seconds: Math.round(seconds * 100) / 100, per_s: Math.round(done / seconds),
    rss_peak_mib: Math.round(rss.peak),
  };
}

/**
 * How cost grows with the work (issue 16 item 4): bench/scaling.ts in its own process, which
 * pins itself as this one does; its figures join results.json and the printed table.
 */
async function scalingPhase(): Promise<Record<string, unknown>> {
  const out = join(work, 'scaling.json');
  const child = spawn(process.execPath, [join(ROOT, 'bench', 'scaling.ts')], {
    env: { ...process.env, SCALING_OUT: out },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  if (code !== 0) throw new Error(`bench/scaling.ts exited ${code}`);
  return JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
}

try {
  const where = cores ? `server CPU ${cores.server}, load CPU ${cores.load}` : 'no (taskset missing or 1 CPU)';
  log(`${BIN}; load: ${loadTool}; pinned: ${where}; nice ${niceness}`);
  results.timer_floor_ms = await timerFloor(Math.min(5000, SECONDS * 500));
  log(`box: a 1 ms timer fires late by p99/max ${JSON.stringify(results.timer_floor_ms)} ms`);
  results.startup = PHASES.has('start') ? await startupPhase() : {};
  results.saturation = {};
  if (PHASES.has('saturation')) for (const n of CONNECTIONS) results.saturation[n] = await saturationPhase(n);
  results.open_loop = {};
  if (PHASES.has('open')) for (const rate of RATES) results.open_loop[rate] = await openLoopPhase(rate);
  results.drain = {};
  if (PHASES.has('drain')) results.drain.chargegate = await drainPhase('chargegate');
  if (PHASES.has('drain') && NAMES.includes('peer')) results.drain.peer = await drainPhase('peer');
  if (PHASES.has('scaling')) results.scaling = await scalingPhase();
} finally {
  rmSync(work, { recursive: true, force: true });
}

writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);
printTable(results);
