// A/B of two chargegate executables: accept req/s (autocannon, 100 connections) and drain
// (N queued rows to delivered), server pinned to CPU 0, load generator and receiver to CPU 1.
// npx tsx bench/ab.ts <binA> <binB> [rounds]   (e.g. dist/chargegate of two commits, copied aside)
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
const R = fileURLToPath(new URL('..', import.meta.url));
const { start } = await import(`${R}/bench/lib.ts`);
const { openDb } = await import(`${R}/src/queue/db.ts`);
const { migrate } = await import(`${R}/src/queue/migrate.ts`);
const { createStore } = await import(`${R}/src/queue/store.ts`);
const [A, B] = process.argv.slice(2, 4) as [string, string];
const ROUNDS = Number(process.argv[4] ?? 3);
const SECONDS = 10;
const DRAIN = 30_000;
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const work = mkdtempSync(join(tmpdir(), 'cg-ab-'));
execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
const rx = await start('taskset', ['-c', '1', process.execPath, '--import', 'tsx', join(R, 'bench', 'receiver.ts')], {});
let n = 0;
function freshDb(bin: string): string {
  const path = join(work, `db${n++}.db`);
  execFileSync(bin, ['acl', 'add', TOKEN, '--db', path], { env: { PATH: process.env.PATH ?? '', CHARGEGATE_CACHE_DIR: join(work, 'cache') } });
  return path;
}
const svc = (bin: string, db: string, env: Record<string, string> = {}) =>
  start('taskset', ['-c', '0', bin, 'serve'], { HOST: '127.0.0.1', PORT: '0', DB_PATH: db, CHARGEGATE_CACHE_DIR: join(work, 'cache'), LOG_LEVEL: 'info', WORKERS: '2', ...env });
const body = JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: `http://127.0.0.1:${rx.port}/cb` });
async function accept(bin: string) {
  const s = await svc(bin, freshDb(bin), { QUEUE_MAX_SIZE: '10000000' });
  const run = (d: number) => autocannon({ url: `http://127.0.0.1:${s.port}/api/v1/charging-session`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections: 100, duration: d });
  await run(2);
  const r = await run(SECONDS);
  await s.stop();
  return { rps: Math.round(r['2xx'] / SECONDS), p99: r.latency.p99 };
}
async function drain(bin: string) {
  const path = freshDb(bin);
  const db = openDb(path, { busyTimeoutMs: 5000 });
  migrate(db);
  const store = createStore(db);
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < DRAIN; i++) store.insert({ id: randomUUID(), station_id: STATION, driver_token: TOKEN, token_hash: 'h', token_mask: 'm', callback_url: `http://127.0.0.1:${rx.port}/cb`, created_at: now });
  })();
  db.close();
  const reader = new Database(path, { readonly: true });
  const count = reader.prepare("SELECT COUNT(*) FROM charging_requests WHERE state = 'delivered'").pluck();
  const t0 = performance.now();
  const s = await svc(bin, path, { QUEUE_MAX_SIZE: String(DRAIN * 2) });
  while ((count.get() as number) < DRAIN && performance.now() - t0 < 180_000) await new Promise((r) => setTimeout(r, 100));
  const sec = (performance.now() - t0) / 1000;
  reader.close();
  await s.stop();
  return Math.round(DRAIN / sec);
}
const out: Record<string, { accept: number[]; p99: number[]; drain: number[] }> = { A: { accept: [], p99: [], drain: [] }, B: { accept: [], p99: [], drain: [] } };
for (let r = 0; r < ROUNDS; r++) {
  for (const [k, bin] of (r % 2 ? [['B', B], ['A', A]] : [['A', A], ['B', B]]) as Array<[string, string]>) {
    const a = await accept(bin);
    const d = await drain(bin);
    out[k]!.accept.push(a.rps);
    out[k]!.p99.push(a.p99);
    out[k]!.drain.push(d);
    process.stderr.write(`round ${r} ${k}: accept ${a.rps}/s p99 ${a.p99} ms, drain ${d}/s\n`);
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(JSON.stringify({ A, B, out, median: { A: { accept: med(out.A!.accept), drain: med(out.A!.drain) }, B: { accept: med(out.B!.accept), drain: med(out.B!.drain) } },
  ratio: { accept: med(out.B!.accept) / med(out.A!.accept), drain: med(out.B!.drain) / med(out.A!.drain) } }, null, 1));
await rx.stop();
