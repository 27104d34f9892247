// Accept throughput by engine, same run (a first cut of issue 12's bench rows): SQLite, one
// PostgreSQL instance, two PostgreSQL instances on one database (the load split between
// them). The services (and PostgreSQL) get CPU 0 where taskset exists, autocannon and the
// receiver CPU 1. Read the ratios: the box is small and shared.
//   npm run build && npx node bench/pgaccept.ts [seconds]   (PG_URL: an admin connection)
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
const ADMIN = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const work = mkdtempSync(join(tmpdir(), 'cg-pgaccept-'));
let pin = false;
try {
  execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  pin = true;
} catch {}

const svc = (env: Record<string, string>): Promise<Child> =>
  start(pin ? 'taskset' : BIN, pin ? ['-c', '0', BIN, 'serve'] : ['serve'], {
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
for (const round of [0, 1]) {
  for (const name of round ? ['postgres x2', 'postgres x1', 'sqlite'] : ['sqlite', 'postgres x1', 'postgres x2']) {
    let env: Record<string, string>;
    if (name === 'sqlite') {
      const path = join(work, `r${round}.db`);
      execFileSync(BIN, ['acl', 'add', TOKEN, '--db', path], { env: { PATH: process.env.PATH ?? '', CHARGEGATE_CACHE_DIR: join(work, 'cache') } });
      env = { DB_PATH: path };
    } else {
      const url = await pgDatabase(`cg_bench_${round}_${name.endsWith('2') ? 2 : 1}`);
      env = { DATABASE_URL: url };
    }
    const services = await Promise.all(Array.from({ length: name.endsWith('x2') ? 2 : 1 }, () => svc(env)));
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
for (const name of ['cg_bench_0_1', 'cg_bench_0_2', 'cg_bench_1_1', 'cg_bench_1_2']) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
await admin.end();
console.log(JSON.stringify(rows));
