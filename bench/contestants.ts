// The bench's contestants, each started fresh on the server core and stopped after its
// measurement: the chargegate executable, bare Hapi + joi (bench/baseline.ts, stores nothing,
// no callbacks) and the peer (bench/peer: Hapi + joi + BullMQ on its own redis-server with
// `appendonly yes`, `appendfsync always`, a worker POSTing callbacks with undici), and the
// chargegate executable on PostgreSQL (DATABASE_URL to a throwaway database on the local
// server, dropped after): `pg1` one instance, `pg2` two instances on the one database, both
// processes on the server core; the load generators split their load between the two ports.
// The PostgreSQL server itself is shared with other jobs and is left unpinned.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { openDb } from '../src/queue/db.ts';
import { migrate } from '../src/queue/migrate.ts';
import { createStore } from '../src/queue/store.ts';
import { freePort, has, pinned, start, stopChild, treeRss, type Child } from './lib.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BIN = join(ROOT, 'dist', 'chargegate');
export const TOKEN = 'ABCD-efgh1234567890_~valid.token';
export const STATION = '123e4567-e89b-12d3-a456-426614174000';

export type Name = 'chargegate' | 'bare' | 'peer' | 'pg1' | 'pg2';
/** The PostgreSQL contestants and their instance counts. */
export const PG_NAMES: Partial<Record<Name, number>> = { pg1: 1, pg2: 2 };
/** An admin connection to the PostgreSQL server the pg contestants use. */
export const PG_ADMIN = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface Running {
  port: number;
  /** Every instance's port (two for pg2; the load is split between them). */
  ports: number[];
  /** Spawn to the `listening` line of the HTTP server (the peer's redis-server started before). */
  readyMs: number;
  /** Every process of the contestant (chargegate: one, with its threads; peer: node and redis-server). */
  pids: number[];
  rss(): { now: number; peak: number };
  stop(): Promise<void>;
}

export interface StartOptions {
  /** chargegate: a database file prepared by prefill (the drain phase); otherwise a fresh one. */
  db?: string;
  /** Extra environment for the contestant. */
  env?: Record<string, string>;
  /** peer: start without its worker (the drain phase fills the queue first). */
  noWorker?: boolean;
  /** peer: reuse this redis (the drain phase), else a fresh one. */
  redis?: Redis;
  /** chargegate: another build of the executable (bench/tail.ts compares builds). */
  bin?: string;
}

function running(c: Child, extra: number[], stopAll: () => Promise<void>): Running {
  const pids = [c.child.pid!, ...extra];
  return { port: c.port, ports: [c.port], readyMs: c.readyMs, pids, rss: () => treeRss(pids), stop: stopAll };
}

export function chargegateEnv(work: string): Record<string, string> {
  return { PATH: process.env.PATH ?? '', CHARGEGATE_CACHE_DIR: join(work, 'cache') };
}

/** A database with the bench's token on the ACL, through the executable's own CLI. */
export function freshDb(work: string, name: string): string {
  const path = join(work, `${name}-${Math.random().toString(36).slice(2, 8)}.db`);
  execFileSync(BIN, ['acl', 'add', TOKEN, '--db', path], { env: chargegateEnv(work) });
  return path;
}

async function chargegate(work: string, o: StartOptions): Promise<Running> {
  const db = o.db ?? freshDb(work, 'cg');
  // BENCH_CG_CMD (a JSON array) runs chargegate another way, e.g. from source with bench/probe.ts.
  const alt = process.env.BENCH_CG_CMD ? (JSON.parse(process.env.BENCH_CG_CMD) as string[]) : null;
  const [cmd, args] = alt ? pinned('server', alt[0]!, alt.slice(1)) : pinned('server', o.bin ?? BIN, ['serve']);
  const c = await start(cmd, args, { ...chargegateEnv(work), HOST: '127.0.0.1', PORT: '0', DB_PATH: db, LOG_LEVEL: 'info', ...o.env });
  return running(c, [], async () => {
    await c.stop();
    if (!o.db) for (const s of ['', '-wal', '-shm', '.lock']) rmSync(db + s, { force: true });
  });
}

async function bare(): Promise<Running> {
  const [cmd, args] = pinned('server', process.execPath, [join(ROOT, 'bench', 'baseline.ts')]);
  const c = await start(cmd, args, {});
  return running(c, [], () => c.stop());
}

export interface Redis {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** A redis-server of its own, durable as the peer needs it, in a temp dir, on the server core. */
export async function startRedis(work: string): Promise<Redis> {
  const dir = mkdtempSync(join(work, 'redis-'));
  const port = await freePort();
  const [cmd, args] = pinned('server', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--loglevel', 'warning']);
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const deadline = performance.now() + 10_000;
  while (!has('redis-cli', ['-p', String(port), 'ping'])) {
    if (child.exitCode !== null || performance.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    pid: child.pid!,
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function peer(work: string, o: StartOptions): Promise<Running> {
  const redis = o.redis ?? (await startRedis(work));
  const [cmd, args] = pinned('server', process.execPath, [join(ROOT, 'bench', 'peer', 'server.mjs')]);
  const c = await start(cmd, args, { REDIS_PORT: String(redis.port), PORT: '0', PEER_WORKER: o.noWorker ? '0' : '1', ...o.env });
  return running(c, [redis.pid], async () => {
    await c.stop();
    if (!o.redis) await redis.stop();
  });
}

const admin = () => postgres(PG_ADMIN, { max: 1, connect_timeout: 3, onnotice: () => undefined });

/** Whether a PostgreSQL server answers at BENCH_PG_URL (default the local one); a reason when not. */
export async function pgReady(): Promise<string | null> {
  if (process.env.BENCH_PG === '0') return 'BENCH_PG=0';
  const sql = admin();
  try {
    await sql`SELECT 1`;
    return null;
  } catch (err) {
    return `no PostgreSQL at ${PG_ADMIN.replace(/:[^:@/]*@/, ':***@')} (${(err as Error).message}); set BENCH_PG_URL`;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

/** n instances of the executable on a fresh database (dropped at stop), the bench's token on its ACL. */
async function chargegatePg(work: string, n: number, o: StartOptions): Promise<Running> {
  // Named after the bench's pid, so a run's leftovers can be told from another run's.
  const name = `cg_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
  const a = admin();
  await a.unsafe(`CREATE DATABASE ${name}`);
  await a.end();
  const url = PG_ADMIN.replace(/\/[^/]*$/, `/${name}`);
  const [cmd, args] = pinned('server', o.bin ?? BIN, ['serve']);
  const env = { ...chargegateEnv(work), HOST: '127.0.0.1', PORT: '0', DATABASE_URL: url, LOG_LEVEL: 'info', ...o.env };
  // One after the other: the first migrates the database, the second finds it migrated.
  const cs: Child[] = [];
  for (let i = 0; i < n; i++) cs.push(await start(cmd, args, env));
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  await sql`INSERT INTO acl (token, blocked) VALUES (${TOKEN}, 0) ON CONFLICT DO NOTHING`;
  await sql.end();
  const pids = cs.map((c) => c.child.pid!);
  return {
    port: cs[0]!.port, ports: cs.map((c) => c.port), readyMs: Math.max(...cs.map((c) => c.readyMs)), pids,
    rss: () => treeRss(pids),
    stop: async () => {
      await Promise.all(cs.map((c) => c.stop()));
      const d = admin();
      await d.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    },
  };
}

export function startContestant(name: Name, work: string, o: StartOptions = {}): Promise<Running> {
  if (name === 'chargegate') return chargegate(work, o);
  const instances = PG_NAMES[name];
  if (instances) return chargegatePg(work, instances, o);
  if (name === 'bare') return bare();
  return peer(work, o);
}

/**
 * Whether the peer can run: redis-server on PATH and the peer's own packages installed
 * (`npm ci --prefix bench/peer`, run here when its node_modules is missing). A reason when not.
 */
export function peerReady(): string | null {
  if (process.env.BENCH_PEER === '0') return 'BENCH_PEER=0';
  if (!has('redis-server') || !has('redis-cli')) return 'redis-server is not installed';
  if (!existsSync(join(ROOT, 'bench', 'peer', 'node_modules', 'bullmq'))) {
    try {
      execFileSync('npm', ['ci', '--prefix', join(ROOT, 'bench', 'peer'), '--no-audit', '--no-fund'], { stdio: ['ignore', 'ignore', 'inherit'] });
    } catch (err) {
      return `npm ci --prefix bench/peer failed: ${(err as Error).message}`;
    }
  }
  return null;
}

/** Queued requests written straight into a fresh database, as accepted requests wait in it (the drain phases). */
export function prefill(work: string, n: number, callbackUrl: string): string {
  const path = freshDb(work, 'drain');
  const db = openDb(path, { busyTimeoutMs: 5000 });
  migrate(db);
  const store = createStore(db);
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      store.insert({
        id: randomUUID(), station_id: STATION, driver_token: TOKEN, token_hash: 'h', token_mask: 'ABCD…oken',
        callback_url: callbackUrl, created_at: now,
      });
    }
  })();
  db.close();
  return path;
}
