// Decisions on PostgreSQL: where should the reads a decide batch needs happen? (docs/postgres.md)
//  (b) main:    the main thread reads the batch's facts (src/queue/pg/facts.ts) on the
//               service's pool and sends them with the task; threads hold no connections.
//  (a) threads: each worker thread has its own small pool (1 connection) and reads the
//               same facts itself (the same queries, so only where they run differs).
// Batches of 64 requests over 10k ACL entries (1 in 4 in a group, 1 in 4 station-scoped),
// 2 threads x 2 batches in flight, for SECONDS each; reports batches/s, p50/p99 ms per
// batch and the main thread's CPU ms per batch.
//   npx node bench/pgfacts.ts [seconds]      (PG_URL: an admin connection; cg_facts is created and dropped)
import { randomUUID } from 'node:crypto';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import postgres from 'postgres';
import { connectPg } from '../src/queue/pg/connect.ts';
import { decideFacts } from '../src/queue/pg/facts.ts';
import { migratePg } from '../src/queue/pg/migrate.ts';
import type { DecideItem } from '../src/core/types.ts';

const ADMIN = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = ADMIN.replace(/\/[^/]*$/, '/cg_facts');
const SECONDS = Number(process.argv[2] ?? 5);
const ENTRIES = 10_000;
const BATCH = 64;
const THREADS = 2;
const IN_FLIGHT = 2;
const stations = Array.from({ length: 20 }, () => randomUUID());
const token = (i: number) => `token-${String(i).padStart(8, '0')}-abcdefgh`;

function batch(): DecideItem[] {
  return Array.from({ length: BATCH }, () => {
    const i = Math.floor(Math.random() * ENTRIES * 1.1); // ~10% unknown tokens
    return { id: randomUUID(), station_id: stations[i % stations.length]!, driver_token: token(i), token_type: 'RFID' as const };
  });
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

/** Runs IN_FLIGHT loops of `one` for SECONDS; latencies in ms. */
async function drive(one: () => Promise<unknown>): Promise<number[]> {
  const lat: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await one();
      lat.push(performance.now() - t);
    }
  }));
  return lat;
}

if (!isMainThread) {
  const sql = connectPg(DB, { max: 1 });
  const lat = await drive(() => decideFacts(sql, batch(), true));
  await sql.end();
  parentPort!.postMessage(lat);
} else {
  const admin = postgres(ADMIN, { max: 1, onnotice: () => undefined });
  await admin.unsafe('DROP DATABASE IF EXISTS cg_facts WITH (FORCE)');
  await admin.unsafe('CREATE DATABASE cg_facts');
  const sql = connectPg(DB, { max: 4 });
  await migratePg(sql);
  await sql`INSERT INTO acl_groups (name) SELECT 'g' || i FROM generate_series(0, 9) i`;
  await sql.unsafe(`INSERT INTO acl (token, group_name) SELECT 'token-' || lpad(i::text, 8, '0') || '-abcdefgh',
    CASE WHEN i % 4 = 0 THEN 'g' || (i % 10) END FROM generate_series(0, ${ENTRIES - 1}) i`);
  await sql`INSERT INTO stations (station_id) SELECT unnest(${stations}::text[])`;
  await sql.unsafe(`INSERT INTO acl_stations (token, station_id) SELECT token, $1 FROM acl WHERE right(split_part(token, '-', 2), 1) = '1'`, [stations[0]!]);
  await sql`ANALYZE`;
  const report = (name: string, lat: number[], cpuMs: number) => {
    const out = { option: name, batches_per_s: Math.round(lat.length / SECONDS), p50_ms: +pct(lat, 0.5).toFixed(2), p99_ms: +pct(lat, 0.99).toFixed(2),
      main_cpu_ms_per_batch: +(cpuMs / lat.length).toFixed(3), connections: name.startsWith('main') ? 'the pool (4)' : `${THREADS} + the pool` };
    console.log(JSON.stringify(out));
  };
  for (const round of [0, 1]) {
    for (const option of round ? ['threads', 'main'] : ['main', 'threads']) {
      const cpu0 = process.cpuUsage();
      let lat: number[];
      if (option === 'main') {
        // As the dispatcher does it: THREADS x IN_FLIGHT batches in flight on the main thread.
        lat = (await Promise.all(Array.from({ length: THREADS }, () => drive(() => decideFacts(sql, batch(), true))))).flat();
      } else {
        const ws = Array.from({ length: THREADS }, () => new Worker(new URL(import.meta.url), { workerData: {} }));
        lat = (await Promise.all(ws.map((w) => new Promise<number[]>((res, rej) => w.once('message', res).once('error', rej))))).flat();
        await Promise.all(ws.map((w) => w.terminate()));
      }
      const c = process.cpuUsage(cpu0);
      // Threads' CPU is counted by process.cpuUsage too: report it only for the main option.
      report(`${option === 'main' ? 'main (b)' : 'threads (a)'}`, lat, option === 'main' ? (c.user + c.system) / 1000 : NaN);
    }
  }
  await sql.end();
  await admin.unsafe('DROP DATABASE cg_facts WITH (FORCE)');
  await admin.end();
}
void workerData;
