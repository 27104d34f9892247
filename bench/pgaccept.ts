// Accept throughput by engine, same run (a first cut of issue 12's bench rows): SQLite, one
// PostgreSQL instance, two PostgreSQL instances on one database (the load split between
// them). The services (and PostgreSQL) get CPU 0 where taskset exists, autocannon and the
// receiver CPU 1. Read the ratios: the box is small and shared. With BASE_BIN (another
// build, e.g. of main), its PostgreSQL rows run too, alternating with this build's.
//   npm run build && npx node bench/pgaccept.ts [seconds] [rounds]   (PG_URL: an admin connection)
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { start, type Child } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'dist', 'chargegate');
const SECONDS = Number(process.argv[2] ?? 10);
const ROUNDS = Number(process.argv[3] ?? 2);
const BASE = process.env.BASE_BIN ?? null;
const ADMIN = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const work = mkdtempSync(join(tmpdir(), 'cg-pgaccept-'));
let pin = false;
try {
  execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  pin = true;
} catch {}

const svc = (env: Record<string, string>, bin = BIN): Promise<Child> =>
  start(pin ? 'taskset' : bin, pin ? ['-c', '0', bin, 'serve'] : ['serve'], {
    HOST: '127.0.0.1', PORT: '0', CHARGEGATE_CACHE_DIR: join(work, 'cache'), LOG_LEVEL: 'info', WORKERS: '2',
    QUEUE_MAX_SIZE: '10000000', ...env,
  });

async function pgDatabase(name: string): Promise<string> {
  const admin = postgres(ADMIN, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  return ADMIN.replace(/\/[^/]*$/, `/${name}`);
}

async function load(ports: number[], rxPort: number, seconds: number) {
  const body = JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: `http://127.0.0.1:${rxPort}/cb` });
  const runs = await Promise.all(ports.map((port) => autocannon({
    url: `http://127.0.0.1:${port}/api/v1/charging-session`, method: 'POST', headers: { 'content-type': 'application/json' },
    body, connections: Math.round(100 / ports.length), duration: seconds,
  })));
  return {
    rps: Math.round(runs.reduce((n, r) => n + r['2xx'], 0) / seconds),
    p50: Math.max(...runs.map((r) => r.latency.p50)),
    p99: Math.max(...runs.map((r) => r.latency.p99)),
    non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
  };
}

const rx = await start(pin ? 'taskset' : process.execPath, [...(pin ? ['-c', '1', process.execPath] : []), join(ROOT, 'bench', 'receiver.ts')], {});
const rows: Array<Record<string, unknown>> = [];
const NAMES = ['sqlite', 'postgres x1', 'postgres x2', ...(BASE ? ['base postgres x1', 'base postgres x2'] : [])];
const dbs: string[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // Alternating order: every contestant runs early in one round and late in the next.
  for (const name of round % 2 ? [...NAMES].reverse() : NAMES) {
    let env: Record<string, string>;
    if (name === 'sqlite') {
      const path = join(work, `r${round}.db`);
      execFileSync(BIN, ['acl', 'add', TOKEN, '--db', path], { env: { PATH: process.env.PATH ?? '', CHARGEGATE_CACHE_DIR: join(work, 'cache') } });
      env = { DB_PATH: path };
    } else {
      const db = `cg_bench_${round}_${name.startsWith('base') ? 'b' : 'n'}${name.endsWith('2') ? 2 : 1}`;
      dbs.push(db);
      const url = await pgDatabase(db);
      env = { DATABASE_URL: url };
    }
    const bin = name.startsWith('base') ? BASE! : BIN;
    const services = await Promise.all(Array.from({ length: name.endsWith('x2') ? 2 : 1 }, () => svc(env, bin)));
    if (name !== 'sqlite') {
      const sql = postgres(env.DATABASE_URL!, { max: 1, onnotice: () => undefined });
      await sql`INSERT INTO acl (token) VALUES (${TOKEN}) ON CONFLICT DO NOTHING`;
      await sql.end();
    }
    const ports = services.map((s) => s.port);
    await load(ports, rx.port, 2);
    const r = await load(ports, rx.port, SECONDS);
    await Promise.all(services.map((s) => s.stop()));
    rows.push({ round, engine: name, ...r });
    process.stderr.write(`${JSON.stringify(rows.at(-1))}\n`);
  }
}
await rx.stop();
const admin = postgres(ADMIN, { max: 1, onnotice: () => undefined });
for (const name of dbs) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
await admin.end();
console.log(JSON.stringify(rows));
// Medians over the rounds, and each round's ratio to SQLite of the same round.
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const name of NAMES) {
  const mine = rows.filter((r) => r.engine === name);
  const ratios = mine.map((r) => (r.rps as number) / (rows.find((s) => s.engine === 'sqlite' && s.round === r.round)!.rps as number));
  console.log(`${name.padEnd(18)} req/s ${mine.map((r) => r.rps).join(' / ')}  median ${median(mine.map((r) => r.rps as number))}`
    + `  vs sqlite ${ratios.map((x) => x.toFixed(2)).join(' / ')}  median ${median(ratios).toFixed(2)}`);
}
