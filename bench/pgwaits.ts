// Where the accept path's time goes on the PostgreSQL side: loads one or two instances of
// the built service (autocannon, 100 connections) and samples pg_stat_activity of their
// database every 10 ms: what each chargegate session is doing (running, waiting for a lock,
// for the WAL flush of its commit, for the client), by the statement it runs. A session
// that waits on a `Lock` while another holds the row is serialized behind it.
//   npm run build && npx node bench/pgwaits.ts [instances=1] [seconds=8]   (PG_URL: admin)
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { pinned, start, type Child } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'dist', 'chargegate');
const INSTANCES = Number(process.argv[2] ?? 1);
const SECONDS = Number(process.argv[3] ?? 8);
const ADMIN = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const DB = 'cg_bench_waits';

const admin = postgres(ADMIN, { max: 1, onnotice: () => undefined });
await admin.unsafe(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
await admin.unsafe(`CREATE DATABASE ${DB}`);
const url = ADMIN.replace(/\/[^/]*$/, `/${DB}`);
const rx = await start(...pinned('load', process.execPath, [join(ROOT, 'bench', 'receiver.ts')]), {});
const services: Child[] = await Promise.all(Array.from({ length: INSTANCES }, () => start(...pinned('server', BIN, ['serve']), {
  HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', WORKERS: '2', QUEUE_MAX_SIZE: '10000000', DATABASE_URL: url,
})));
const data = postgres(url, { max: 1, onnotice: () => undefined });
await data`INSERT INTO acl (token) VALUES (${TOKEN}) ON CONFLICT DO NOTHING`;

const samples = new Map<string, number>();
let sampling = true;
let n = 0;
const sampler = (async () => {
  while (sampling) {
    const rows = await admin<Array<{ what: string }>>`SELECT state || ' ' || COALESCE(wait_event_type || ':' || wait_event, 'cpu')
        || ' | ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS what
      FROM pg_stat_activity WHERE datname = ${DB} AND application_name = 'chargegate' AND state <> 'idle'`;
    n++;
    for (const r of rows) samples.set(r.what, (samples.get(r.what) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, 10));
  }
})();
const [before] = await admin<Array<{ c: number }>>`SELECT xact_commit::int AS c FROM pg_stat_database WHERE datname = ${DB}`;
const body = JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: `http://127.0.0.1:${rx.port}/cb` });
const runs = await Promise.all(services.map((s) => autocannon({
  url: `http://127.0.0.1:${s.port}/api/v1/charging-session`, method: 'POST', headers: { 'content-type': 'application/json' },
  body, connections: Math.round(100 / services.length), duration: SECONDS,
})));
const [after] = await admin<Array<{ c: number }>>`SELECT xact_commit::int AS c FROM pg_stat_database WHERE datname = ${DB}`;
sampling = false;
await sampler;
const accepted = runs.reduce((s, r) => s + r['2xx'], 0);
console.log(JSON.stringify({
  instances: INSTANCES, rps: Math.round(accepted / SECONDS), commits_per_s: Math.round((after!.c - before!.c) / SECONDS),
  accepts_per_commit: +(accepted / Math.max(1, after!.c - before!.c)).toFixed(1),
}));
// Average sessions in each state over the run (the samples divided by the sampling rounds).
for (const [what, count] of [...samples].sort((a, b) => b[1] - a[1]).slice(0, 14)) {
  console.log(`${(count / n).toFixed(2).padStart(6)}  ${what}`);
}
await Promise.all(services.map((s) => s.stop()));
await rx.stop();
await data.end();
await admin.unsafe(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
await admin.end();
