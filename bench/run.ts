// npm run bench: chargegate against baselines measured in the same run, on loopback only,
// bounded in time (a few minutes). Prints a table and writes bench/results.json.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { openDb } from '../src/queue/db.ts';
import { migrate } from '../src/queue/migrate.ts';
import { createStore } from '../src/queue/store.ts';
import { median, percentile, rss, start, type Child } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'dist', 'chargegate');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const DRAIN_N = Number(process.env.BENCH_DRAIN ?? 100_000);
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const work = mkdtempSync(join(tmpdir(), 'cg-bench-'));
const results: Record<string, unknown> = { when: new Date().toISOString(), seconds: SECONDS, machine: { cpus: (await import('node:os')).availableParallelism() } };

function log(s: string) {
  process.stderr.write(`bench: ${s}\n`);
}

async function receiver(): Promise<Child> {
  return start(process.execPath, [join(ROOT, 'bench', 'receiver.ts')], {});
}

async function received(rx: Child): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${rx.port}/stats`);
  return ((await r.json()) as { received: number }).received;
}

function freshDb(name: string): string {
  const path = join(work, `${name}.db`);
  execFileSync(BIN, ['acl', 'add', TOKEN, '--db', path], { env: { PATH: process.env.PATH ?? '', CHARGEGATE_CACHE_DIR: join(work, 'cache') } });
  return path;
}

async function service(dbPath: string, env: Record<string, string> = {}): Promise<Child> {
  return start(BIN, ['serve'], { HOST: '127.0.0.1', PORT: '0', DB_PATH: dbPath, CHARGEGATE_CACHE_DIR: join(work, 'cache'), LOG_LEVEL: 'info', ...env });
}

function body(callbackPort: number): string {
  return JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: `http://127.0.0.1:${callbackPort}/cb` });
}

interface Load {
  rps2xx: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(port: number, connections: number, seconds: number, payload: string): Promise<Load> {
  const r = await autocannon({
    url: `http://127.0.0.1:${port}/api/v1/charging-session`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: payload,
    connections,
    duration: seconds,
  });
  return { rps2xx: Math.round(r['2xx'] / seconds), p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

async function acceptPhase(connections: number) {
  const rx = await receiver();
  const base = await start(process.execPath, [join(ROOT, 'bench', 'baseline.ts')], {});
  await load(base.port, connections, 2, body(rx.port)); // warm-up
  const b = await load(base.port, connections, SECONDS, body(rx.port));
  await base.stop();
  const svc = await service(freshDb(`accept-${connections}`), { QUEUE_MAX_SIZE: '10000000' });
  await load(svc.port, connections, 2, body(rx.port));
  const c = await load(svc.port, connections, SECONDS, body(rx.port));
  const peak = rss(svc.child.pid!).peak;
  await svc.stop();
  await rx.stop();
  log(`accept @${connections}: chargegate ${c.rps2xx}/s p99 ${c.p99} ms, baseline ${b.rps2xx}/s p99 ${b.p99} ms`);
  return { connections, chargegate: c, baseline: b, ratio_throughput: c.rps2xx / b.rps2xx, ratio_p99: c.p99 / b.p99, peak_rss_mib: peak };
}

async function e2ePhase(acceptBaseline: number, env: Record<string, string> = {}) {
  const rx = await receiver();
  const dbPath = freshDb(`e2e-${Object.values(env).join('-')}`);
  const svc = await service(dbPath, env);
  const idle = rss(svc.child.pid!).now;
  const depths: number[] = [];
  const sampler = setInterval(async () => {
    try {
      const h = (await (await fetch(`http://127.0.0.1:${svc.port}/health`)).json()) as { components: { queue: { depth: number } } };
      depths.push(h.components.queue.depth);
    } catch {}
  }, 500);
  const before = await received(rx);
  const l = await load(svc.port, 100, SECONDS, body(rx.port));
  const delivered = (await received(rx)) - before;
  clearInterval(sampler);
  const peak = rss(svc.child.pid!).peak;
  await svc.stop();
  await rx.stop();
  const db = new Database(dbPath, { readonly: true });
  const lat = (db
    .prepare(`SELECT a.started_at + a.duration_ms - r.decided_at AS ms FROM callback_attempts a JOIN charging_requests r ON r.id = a.request_id
      WHERE a.outcome = 'delivered' ORDER BY ms`)
    .pluck()
    .all() as number[]);
  db.close();
  const out = {
    accepted_per_s: l.rps2xx,
    delivered_per_s: Math.round(delivered / SECONDS),
    rejected_503: l.non2xx,
    ratio_delivered_vs_accept_baseline: Math.round(delivered / SECONDS) / acceptBaseline,
    queue_depth_max: Math.max(0, ...depths),
    queue_depth_last: depths.at(-1) ?? 0,
    queue_bounded: Math.max(0, ...depths) <= 10_000,
    decision_to_callback_ms: { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99) },
    rss_idle_mib: idle,
    rss_peak_mib: peak,
  };
  log(`e2e: accepted ${out.accepted_per_s}/s delivered ${out.delivered_per_s}/s depth max ${out.queue_depth_max}`);
  return out;
}

async function drainPhase() {
  const rx = await receiver();
  const dbPath = freshDb('drain');
  const db = openDb(dbPath, { busyTimeoutMs: 5000 });
  migrate(db);
  const store = createStore(db);
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < DRAIN_N; i++) {
      store.insert({ id: randomUUID(), station_id: STATION, driver_token: TOKEN, token_hash: 'h', token_mask: 'ABCD…oken', callback_url: `http://127.0.0.1:${rx.port}/cb`, created_at: now });
    }
  })();
  db.close();
  const reader = new Database(dbPath, { readonly: true });
  const t0 = performance.now();
  const svc = await service(dbPath, { QUEUE_MAX_SIZE: String(DRAIN_N * 2) });
  const count = reader.prepare("SELECT COUNT(*) FROM charging_requests WHERE state = 'delivered'").pluck();
  const deadline = t0 + 180_000;
  while ((count.get() as number) < DRAIN_N && performance.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const seconds = (performance.now() - t0) / 1000;
  const done = count.get() as number;
  const peak = rss(svc.child.pid!).peak;
  reader.close();
  await svc.stop();
  await rx.stop();
  log(`drain: ${done}/${DRAIN_N} in ${seconds.toFixed(1)} s`);
  return { requests: DRAIN_N, delivered: done, seconds, per_s: Math.round(done / seconds), rss_peak_mib: peak };
}

async function startupPhase() {
  const times: number[] = [];
  const idle: number[] = [];
  for (let i = 0; i < 7; i++) {
    const svc = await service(join(work, `start-${i}.db`), {});
    times.push(svc.readyMs);
    await new Promise((r) => setTimeout(r, 1000));
    idle.push(rss(svc.child.pid!).now);
    await svc.stop();
  }
  return { start_to_ready_ms_median: Math.round(median(times)), runs_ms: times.map(Math.round), rss_idle_mib_median: Math.round(median(idle)) };
}

try {
  results.startup = await startupPhase();
  const a100 = await acceptPhase(100);
  const a1000 = await acceptPhase(1000);
  results.accept = [a100, a1000];
  results.e2e = await e2ePhase(a100.baseline.rps2xx);
  // Tuning data: one worker thread leaves the second core to the main thread.
  results.e2e_workers_1 = await e2ePhase(a100.baseline.rps2xx, { WORKERS: '1' });
  results.drain = await drainPhase();
  (results.drain as Record<string, number>).ratio_vs_accept_baseline = (results.drain as { per_s: number }).per_s / a100.baseline.rps2xx;
} finally {
  rmSync(work, { recursive: true, force: true });
}

writeFileSync(join(ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);

const s = results as any;
const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const rows: Array<[string, string, string, string]> = [
  ['measure', 'chargegate', 'baseline / target', 'ratio'],
  ...s.accept.flatMap((a: any) => [
    [`accept req/s @${a.connections} conns`, String(a.chargegate.rps2xx), String(a.baseline.rps2xx), `${f(a.ratio_throughput)} (target ≥ 0.90 @100)`],
    [`accept p50/p99 ms @${a.connections}`, `${a.chargegate.p50}/${a.chargegate.p99}`, `${a.baseline.p50}/${a.baseline.p99}`, `${f(a.ratio_p99)} p99 (target ≤ 1.50 @100)`],
  ]),
  ['e2e accepted/s', String(s.e2e.accepted_per_s), '', ''],
  ['e2e delivered callbacks/s', String(s.e2e.delivered_per_s), String(s.accept[0].baseline.rps2xx), `${f(s.e2e.ratio_delivered_vs_accept_baseline)} (target ≥ 0.70)`],
  ['e2e delivered/s with WORKERS=1', String(s.e2e_workers_1.delivered_per_s), String(s.accept[0].baseline.rps2xx), f(s.e2e_workers_1.ratio_delivered_vs_accept_baseline)],
  ['e2e queue depth max (bound 10000)', String(s.e2e.queue_depth_max), s.e2e.queue_bounded ? 'bounded' : 'NOT bounded', ''],
  ['decision→callback p50/p99 ms', `${s.e2e.decision_to_callback_ms.p50}/${s.e2e.decision_to_callback_ms.p99}`, '', ''],
  [`drain ${s.drain.requests} req/s`, String(s.drain.per_s), String(s.accept[0].baseline.rps2xx), `${f(s.drain.ratio_vs_accept_baseline)} (target ≥ 2.00)`],
  ['RSS idle MiB', String(Math.round(s.startup.rss_idle_mib_median)), '≤ 100', ''],
  ['RSS peak MiB (saturation)', String(Math.round(Math.max(s.e2e.rss_peak_mib, s.accept[1].peak_rss_mib, s.drain.rss_peak_mib))), '≤ 300', ''],
  ['start to ready ms (median of 7)', String(s.startup.start_to_ready_ms_median), '≤ 300', ''],
];
const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
