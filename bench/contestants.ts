// The bench's contestants, each started fresh on the server core and stopped after its
// measurement: the chargegate executable, bare Hapi + joi (bench/baseline.ts, stores nothing,
// no callbacks) and the peer (bench/peer: Hapi + joi + BullMQ on its own redis-server with
// `appendonly yes`, `appendfsync always`, a worker POSTing callbacks with undici).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, has, pinned, start, stopChild, treeRss, type Child } from './lib.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BIN = join(ROOT, 'dist', 'chargegate');
export const TOKEN = 'ABCD-efgh1234567890_~valid.token';
export const STATION = '123e4567-e89b-12d3-a456-426614174000';

export type Name = 'chargegate' | 'bare' | 'peer';

export interface Running {
  port: number;
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
  return { port: c.port, readyMs: c.readyMs, pids, rss: () => treeRss(pids), stop: stopAll };
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

export function startContestant(name: Name, work: string, o: StartOptions = {}): Promise<Running> {
  if (name === 'chargegate') return chargegate(work, o);
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
