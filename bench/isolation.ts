// Delivery isolation, measured: POST -> callback latency at a healthy receiver, at a fixed
// open-loop rate, without and then with a receiver on another origin that never answers
// and has HUNG accepted requests in flight/queued. Also the 10k-row `acl import` lock time.
//
//   npm run build && node bench/isolation.ts [--rate 200] [--seconds 10] [--hung 1000]
//
// The service (the built executable, all its threads) is pinned to CPU 0 with taskset when
// it exists; this process (load and both receivers) to CPU 1. Loopback only; stops by itself.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { start } from './lib.ts';

const { values: opts } = parseArgs({ options: { rate: { type: 'string', default: '200' }, seconds: { type: 'string', default: '10' }, hung: { type: 'string', default: '1000' } } });
const RATE = Number(opts.rate);
const SECONDS = Number(opts.seconds);
const HUNG = Number(opts.hung);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'dist', 'chargegate');
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const work = mkdtempSync(join(tmpdir(), 'cg-iso-'));
const pin = (() => {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return availableParallelism() >= 2;
  } catch {
    return false;
  }
})();
if (pin) execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });

function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  server.keepAliveTimeout = 30_000;
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb` })));
}

const arrived = new Map<string, number>();
const healthy = await listen((req, res) => {
  req.resume();
  req.on('end', () => {
    arrived.set(String(req.headers['webhook-id']), performance.now());
    res.writeHead(200).end();
  });
});
const hung = await listen((req) => req.resume()); // reads, never answers

async function service(name: string) {
  const db = join(work, `${name}.db`);
  const env = { PATH: process.env.PATH ?? '', CHARGEGATE_CACHE_DIR: join(work, 'cache') };
  execFileSync(BIN, ['acl', 'add', TOKEN, '--db', db], { env });
  const cmd = pin ? 'taskset' : BIN;
  const args = pin ? ['-c', '0', BIN, 'serve'] : ['serve'];
  return { db, svc: await start(cmd, args, { ...env, HOST: '127.0.0.1', PORT: '0', DB_PATH: db, LOG_LEVEL: 'info', CALLBACK_TIMEOUT_MS: '60000' }) };
}

async function post(port: number, callback: string): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: callback }),
  });
  if (r.status !== 202) throw new Error(`POST answered ${r.status}`);
  return ((await r.json()) as { request_id: string }).request_id;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(s.length * p))]! * 10) / 10;
};

async function round(withHung: boolean) {
  const { svc } = await service(withHung ? 'hung' : 'clean');
  try {
    for (let i = 0; i < 50; i++) await post(svc.port, healthy.url); // warm-up
    if (withHung) await Promise.all(Array.from({ length: HUNG }, () => post(svc.port, hung.url)));
    const sent = new Map<string, number>();
    const total = RATE * SECONDS;
    const t0 = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const at = performance.now();
      inflight.push(post(svc.port, healthy.url).then((id) => void sent.set(id, at)));
    }
    await Promise.all(inflight);
    const deadline = performance.now() + 30_000;
    while ([...sent.keys()].some((id) => !arrived.has(id)) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const lat = [...sent].map(([id, at]) => (arrived.get(id) ?? Number.POSITIVE_INFINITY) - at);
    return { n: lat.length, missing: lat.filter((x) => !Number.isFinite(x)).length, p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: pct(lat, 1) };
  } finally {
    await svc.stop();
  }
}

/** `acl import` of 10k rows into a database the service is not running on: how long the write lock is held. */
async function importLock(): Promise<number> {
  const db = join(work, 'import.db');
  const csv = join(work, 'acl.csv');
  const lines = ['token,stations,expires_at,blocked,note'];
  for (let i = 0; i < 10_000; i++) lines.push(`TOKEN-${String(i).padStart(8, '0')}-0123456789abcdef,,,false,`);
  writeFileSync(csv, `${lines.join('\n')}\n`);
  const env = { PATH: process.env.PATH ?? '', CHARGEGATE_CACHE_DIR: join(work, 'cache') };
  execFileSync(BIN, ['stations', 'list', '--db', db], { env });
  // Another connection asks for the write lock every ms while the import runs: the longest
  // it had to wait is how long the import held it.
  const probe = spawn(process.execPath, ['-e', `
    const D = require(${JSON.stringify(join(ROOT, 'node_modules', 'better-sqlite3'))});
    const db = new D(${JSON.stringify(db)}); db.pragma('busy_timeout = 60000');
    let worst = 0; const end = Date.now() + 15000;
    const tick = () => { const t = performance.now(); db.exec('BEGIN IMMEDIATE; COMMIT'); worst = Math.max(worst, performance.now() - t);
      if (Date.now() < end && !stop) setTimeout(tick, 1); else { process.stdout.write(String(Math.round(worst))); process.exit(0); } };
    let stop = false; process.on('SIGTERM', () => { stop = true; }); tick();`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  probe.stdout!.on('data', (c) => (out += c));
  execFileSync(BIN, ['acl', 'import', csv, '--db', db], { env });
  const exited = new Promise((r) => probe.once('exit', r));
  probe.kill('SIGTERM');
  await exited;
  return Number(out) || NaN;
}

try {
  const clean = await round(false);
  const withHung = await round(true);
  const lock = await importLock();
  const result = { when: new Date().toISOString(), pinned: pin, rate: RATE, seconds: SECONDS, hung: HUNG, clean, withHung };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.stdout.write(`healthy POST->callback at ${RATE}/s: p50 ${clean.p50} ms, p99 ${clean.p99} ms without a hung origin; p50 ${withHung.p50} ms, p99 ${withHung.p99} ms with ${HUNG} requests to a hung origin (missing ${withHung.missing})\n`);
  process.stdout.write(`acl import of 10,000 rows: longest wait for the write lock meanwhile ~${lock} ms\n`);
} finally {
  healthy.server.closeAllConnections();
  hung.server.closeAllConnections();
  healthy.server.close();
  hung.server.close();
  rmSync(work, { recursive: true, force: true });
}
