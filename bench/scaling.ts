// npm run bench:scaling — how cost grows with the work (issue 16 item 4), measured from
// outside with the built executable. The service runs on core 0; this process (load,
// receivers, probes), wrk and the acl import CLI on core 1 (taskset, when
// installed). Rows:
//   1. `acl import --replace` of 1,000,000 entries into a running service's file: wall
//      time, when the new list came into force, CPU seconds and peak RSS (VmHWM) of the
//      CLI (/usr/bin/time), the longest write-lock hold a concurrent writer saw, and the
//      service's accept latency meanwhile (100 POST/s, open loop). Twice: over a 1-entry
//      list, then over itself.
//      Then a file whose row 900,000 is malformed: refused, the list as it was.
//   2. Decision latency with 10 vs 1,000,000 ACL entries: decide() in this process
//      (one item per read transaction), and POST→callback at 200/s, rounds alternating.
//   3. Accept rate (wrk, else autocannon; 100 connections) with an empty queue vs a backlog of
//      QUEUE_MAX_SIZE (10,000, the default) open requests whose receiver is down.
//   4. /metrics and /health latency with that backlog vs empty.
//   5. 1,000 distinct callback origins vs 1: delivery throughput and POST→callback latency.
// Writes bench/scaling.json (SCALING_OUT). Env: SCALING_ACL_ROWS (1000000), SCALING_SECONDS (5),
// SCALING_BACKLOG (10000), SCALING_PART=import|rest (row 1 alone | rows 2-5). `npm run bench` runs it as its last
// phase (bench/run.ts) and prints its rows under the main table (bench/report.ts).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { decide } from '../workers/decide.ts';
import { median, start, type Child } from './lib.ts';
import {
  getLatency, hasTaskset, lockProbe, openLoop, pinned, pinSelf, post, receivers, stats, LOAD_CORE, SERVER_CORE,
} from './scalinglib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = [join(ROOT, 'dist', 'chargegate'), join(ROOT, 'dist', 'chargegate-linux-x64')].find(existsSync)!;
const ROWS = Number(process.env.SCALING_ACL_ROWS ?? 1_000_000);
const SECONDS = Number(process.env.SCALING_SECONDS ?? 5);
/** SCALING_PART=import: row 1 alone (the acl imports); =rest: rows 2-5 (the 1M list imported unmeasured). */
const PART = process.env.SCALING_PART ?? 'all';
const OUT = process.env.SCALING_OUT ?? join(ROOT, 'bench', 'scaling.json');
/** Open requests for rows 3-4: QUEUE_MAX_SIZE's default (SCALING_BACKLOG, for smoke runs). */
const BACKLOG = Number(process.env.SCALING_BACKLOG ?? 10_000);
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const tok = (i: number) => `bench-import-${String(i).padStart(12, '0')}`;
const work = mkdtempSync(join(tmpdir(), 'cg-scaling-'));
const PIN = hasTaskset();
const WRK = (() => {
  try {
    execFileSync('wrk', ['-v'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // wrk -v prints its version and exits 1.
    return (err as { status?: number }).status === 1;
  }
})();
if (PIN) pinSelf();
const results: Record<string, unknown> = {
  when: new Date().toISOString(),
  method: PIN
    ? `service on core ${SERVER_CORE}; load (${WRK ? 'wrk' : 'autocannon'}), receivers, probes ` +
      `and the acl import CLI on core ${LOAD_CORE} (taskset)`
    : 'unpinned: taskset not installed',
  aclRows: ROWS,
  // The box is shared: the 1/5/15-minute load averages when the run started (and ended).
  loadAverage: { start: loadavg().map((x) => Math.round(x * 10) / 10) } as Record<string, number[]>,
};
const log = (s: string) => process.stderr.write(`scaling: ${s}\n`);
const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', CHARGEGATE_CACHE_DIR: join(work, 'cache') };

function cliRun(args: string[]): string {
  return execFileSync(BIN, args, { env: baseEnv, encoding: 'utf8' });
}

function freshDb(name: string): string {
  const path = join(work, `${name}.db`);
  cliRun(['acl', 'add', TOKEN, '--db', path]);
  return path;
}

async function service(dbPath: string, env: Record<string, string> = {}): Promise<Child> {
  const [cmd, args] = pinned(SERVER_CORE, BIN, ['serve'], PIN);
  const vars = { HOST: '127.0.0.1', PORT: '0', DB_PATH: dbPath, LOG_LEVEL: 'info', QUEUE_MAX_SIZE: '10000000' };
  return start(cmd, args, { ...baseEnv, ...vars, ...env });
}

/** `badAt`: the data row (1-based) written with a station id that is not a UUID. */
async function writeCsv(path: string, n: number, badAt = 0): Promise<void> {
  const out = createWriteStream(path);
  out.write('token,stations,expires_at,blocked,note\n');
  for (let i = 0; i < n; i++) {
    const station = i + 1 === badAt ? 'not-a-uuid' : i % 3 === 0 ? STATION : '';
    if (out.write(`${tok(i)},${station},,false,row ${i}\n`)) continue;
    await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
}

/** Row 1: one `acl import --replace` under /usr/bin/time, beside a serving service. */
async function importOnce(svc: Child, dbPath: string, csv: string, label: string) {
  const timeFile = join(work, 'time.txt');
  // Beside the service, on the load core (on the service's core it would take the service's
  // CPU). Not niced: a niced import is preempted while it holds the write lock (priority
  // inversion; measured: the lock held ≥ 860 ms on this shared box).
  const cli = [BIN, 'acl', 'import', csv, '--replace', '--db', dbPath];
  const [cmd, args] = pinned(LOAD_CORE, '/usr/bin/time', ['-f', '%M %U %S', '-o', timeFile, ...cli], PIN);
  const probe = lockProbe(dbPath);
  const t0 = performance.now();
  const child = spawn(cmd, args, { env: baseEnv, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const dead = 'http://127.0.0.1:9/cb';
  const body = (i: number) => ({ station_id: STATION, driver_token: tok((i * 7919) % ROWS), callback_url: dead });
  const sent = await openLoop(svc.port, 100, 0, body, exited);
  const code = await exited;
  const wallS = Math.round((performance.now() - t0) / 100) / 10;
  const lock = await probe.stop();
  if (code !== 0) throw new Error(`acl import exited ${code}`);
  const timed = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  const row = {
    label,
    output: out.trim(),
    wallS,
    inForceAtS: lock.switchedAtS,
    peakRssMiB: Math.round(timed[0]! / 1024),
    // CPU seconds of the CLI (user + system): what the import costs whatever the box's load.
    cpuS: Math.round((timed[1]! + timed[2]!) * 10) / 10,
    longestWriteLockHoldMs: lock.longestHoldMs,
    probePausedUpToMs: lock.probePausedUpToMs,
    acceptDuringImport: { ...stats(sent.map((s) => s.ms)), non202: sent.filter((s) => s.status !== 202).length },
  };
  log(`acl import ${label}: ${JSON.stringify(row)}`);
  return row;
}

/** decide() in this process, one item per call (one read transaction), random listed tokens. */
function decideLatency(dbPath: string, listed: number, n = 20_000) {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const token = listed > 10 ? tok((i * 104_729) % listed) : TOKEN;
    const t0 = performance.now();
    const items = [{ id: 'x', station_id: STATION, driver_token: token, token_type: 'RFID' as const }];
    const [d] = decide({ dbPath, now: Date.now(), items })!;
    ms.push((performance.now() - t0) * 1000);
    if (d!.status !== 'allowed') throw new Error(`decide: ${token} ${d!.status}/${d!.reason}`);
  }
  return stats(ms); // µs
}

/** POST→callback at `rate`/s for SECONDS: latency of each request whose callback arrived. */
type Receivers = Awaited<ReturnType<typeof receivers>>;
async function endToEnd(port: number, rx: Receivers, rate: number, token: (i: number) => string, origins = 1) {
  const body = (i: number) => ({ station_id: STATION, driver_token: token(i), callback_url: rx.url(i % origins) });
  const sent = await openLoop(port, rate, SECONDS, body);
  const deadline = performance.now() + 30_000;
  const ok = sent.filter((s) => s.id !== null);
  while (ok.some((s) => !rx.arrived.has(s.id!)) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const lat = ok.filter((s) => rx.arrived.has(s.id!)).map((s) => rx.arrived.get(s.id!)! - s.sentAt);
  const lastArrival = Math.max(...ok.map((s) => rx.arrived.get(s.id!) ?? 0));
  const spanS = (lastArrival - sent[0]!.sentAt) / 1000;
  const lost = ok.length - lat.length;
  return { ...stats(lat), lost, non202: sent.length - ok.length, deliveredPerS: Math.round(lat.length / spanS) };
}

/** Accepted POSTs a second at 100 connections: wrk when installed (its own process, pinned), else autocannon here. */
async function acceptRate(port: number, rxUrl: string): Promise<number> {
  const body = JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: rxUrl });
  const url = `http://127.0.0.1:${port}/api/v1/charging-session`;
  if (WRK) {
    const script = join(work, 'post.lua');
    const lua = ['wrk.method = "POST"', 'wrk.headers["content-type"] = "application/json"'];
    lua.push(`wrk.body = ${JSON.stringify(body)}`);
    writeFileSync(script, `${lua.join('\n')}\n`);
    const [cmd, args] = pinned(LOAD_CORE, 'wrk', ['-t1', '-c100', `-d${SECONDS}s`, '-s', script, url], PIN);
    const out = execFileSync(cmd, args, { encoding: 'utf8' });
    const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
    const bad = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    return Math.round((total - bad) / SECONDS);
  }
  const headers = { 'content-type': 'application/json' };
  const r = await autocannon({ url, method: 'POST', headers, body, connections: 100, duration: SECONDS });
  return Math.round(r['2xx'] / SECONDS);
}

try {
  // 1. acl import
  log(`writing a CSV of ${ROWS} entries`);
  const csv = join(work, 'acl.csv');
  await writeCsv(csv, ROWS);
  const bigDb = freshDb('big');
  if (PART !== 'rest') {
    const svc = await service(bigDb);
    const imports = [await importOnce(svc, bigDb, csv, 'over a 1-entry list')];
    imports.push(await importOnce(svc, bigDb, csv, 'over itself'));
    await svc.stop();
    results.aclImport = imports;

    // The same list with a malformed line at row 900,000: refused, nothing changed.
    const badAt = Math.floor(ROWS * 0.9);
    const bad = join(work, 'bad.csv');
    await writeCsv(bad, ROWS, badAt);
    const list = () => {
      const c = new Database(bigDb, { readonly: true });
      try {
        return c.prepare(`SELECT (SELECT gen FROM acl_current) AS gen, (SELECT COUNT(*) FROM acl) AS entries,
          (SELECT COUNT(*) FROM acl_rows) AS rows, (SELECT MAX(updated_at) FROM acl) AS updated`).get();
      } finally {
        c.close();
      }
    };
    const before = list();
    const t0 = performance.now();
    let refused = '';
    try {
      execFileSync(BIN, ['acl', 'import', bad, '--replace', '--db', bigDb], { env: baseEnv, stdio: 'pipe' });
    } catch (err) {
      refused = `exit ${(err as { status: number }).status}: ${String((err as { stderr: string }).stderr).trim()}`;
    }
    const after = list();
    const refusedAfterS = Math.round((performance.now() - t0) / 100) / 10;
    const unchanged = JSON.stringify(before) === JSON.stringify(after);
    results.aclImportBadLine = { badRow: badAt, refused, refusedAfterS, before, after, unchanged };
    log(`bad line at row ${badAt}: ${JSON.stringify(results.aclImportBadLine)}`);
  } else {
    cliRun(['acl', 'import', csv, '--replace', '--db', bigDb]); // the 1M list for row 2, unmeasured
  }
  // Requests accepted during the imports must not weigh on row 2: only the list differs.
  const admin = new Database(bigDb);
  admin.exec('DELETE FROM callback_attempts; DELETE FROM charging_requests');
  admin.close();

  if (PART !== 'import') {
    // 2. decision latency, 10 vs ROWS entries
    const smallDb = freshDb('small');
    for (let i = 1; i < 10; i++) cliRun(['acl', 'add', `bench-small-${String(i).padStart(12, '0')}`, '--db', smallDb]);
    const decideUs = { entries10: decideLatency(smallDb, 10), [`entries${ROWS}`]: decideLatency(bigDb, ROWS) };
    log(`decide() µs per item: ${JSON.stringify(decideUs)}`);
    const rx = await receivers(1);
    const e2e: Record<string, unknown[]> = { entries10: [], [`entries${ROWS}`]: [] };
    for (let round = 0; round < 2; round++) {
      for (const [key, db, listed] of [['entries10', smallDb, 10], [`entries${ROWS}`, bigDb, ROWS]] as const) {
        const s = await service(db);
        e2e[key]!.push(await endToEnd(s.port, rx, 200, (i) => (listed > 10 ? tok((i * 104_729) % listed) : TOKEN)));
        await s.stop();
      }
    }
    results.decisionLatency = { decideMicroseconds: decideUs, postToCallbackMs200PerS: e2e };
    log(`POST→callback at 200/s: ${JSON.stringify(e2e)}`);

    // 3, 4. a backlog of BACKLOG open requests whose receiver is down (connection refused,
    // next attempt in 10 minutes), vs an empty queue
    const backlogDb = freshDb('backlog');
    const emptyDb = freshDb('empty');
    const slow = { CALLBACK_RETRY_BASE_MS: '600000' };
    const filler = await service(backlogDb, slow);
    for (let i = 0; i < BACKLOG; i += 500) {
      const dead = { station_id: STATION, driver_token: TOKEN, callback_url: 'http://127.0.0.1:9/cb' };
      await Promise.all(Array.from({ length: 500 }, () => post(filler.port, dead)));
    }
    await filler.stop();
    const open = () => {
      const c = new Database(backlogDb, { readonly: true });
      try {
        return c.prepare("SELECT COUNT(*) FROM charging_requests WHERE state IN ('queued','authorizing','delivering')")
          .pluck().get() as number;
      } finally {
        c.close();
      }
    };
    const accept: Record<string, number[]> = { empty: [], backlog: [] };
    const probes: Record<string, Record<string, unknown>> = { empty: {}, backlog: {} };
    for (let round = 0; round < 2; round++) {
      for (const [key, db] of [['empty', emptyDb], ['backlog', backlogDb]] as const) {
        const s = await service(db, slow);
        if (round === 0) {
          const openRequests = key === 'backlog' ? open() : 0;
          probes[key] = {
            openRequests,
            health: await getLatency(s.port, '/health', 200),
            metrics: await getLatency(s.port, '/metrics', 200),
          };
        }
        await acceptRate(s.port, rx.url(0)); // warm-up, 5 s
        accept[key]!.push(await acceptRate(s.port, rx.url(0)));
        await s.stop();
      }
    }
    // Two rounds each: the better one (median() of two is the upper one).
    const best = { empty: median(accept.empty!), backlog: median(accept.backlog!) };
    results.acceptPerS = { ...accept, best, ratio: Math.round((best.backlog / best.empty) * 100) / 100 };
    results.healthAndMetricsMs = probes;
    log(`accept/s: ${JSON.stringify(results.acceptPerS)}; /health, /metrics: ${JSON.stringify(probes)}`);
    await rx.close();

    // 5. 1,000 distinct callback origins vs 1, at 500/s
    const originsDb = freshDb('origins');
    const out: Record<string, unknown[]> = { origins1: [], origins1000: [] };
    for (let round = 0; round < 2; round++) {
      for (const n of [1, 1000]) {
        const many = await receivers(n);
        const s = await service(originsDb);
        out[`origins${n}`]!.push(await endToEnd(s.port, many, 500, () => TOKEN, n));
        await s.stop();
        await many.close();
      }
    }
    results.callbackOrigins500PerS = out;
    log(`origins: ${JSON.stringify(out)}`);
  }
} finally {
  (results.loadAverage as Record<string, number[]>).end = loadavg().map((x) => Math.round(x * 10) / 10);
  writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);
  rmSync(work, { recursive: true, force: true });
}
console.log(JSON.stringify(results, null, 2));
process.exit(0);
