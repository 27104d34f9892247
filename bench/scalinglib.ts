// Helpers of bench/scaling.ts: core pinning, callback receivers that time each arrival,
// an open-loop poster, and a write-lock probe.
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { Agent, fetch } from 'undici';
import { percentile } from './lib.ts';

/** Core 0 for the service, core 1 for this process and its load (on a 2-core box). */
export const SERVER_CORE = '0';
export const LOAD_CORE = '1';

export function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Pins every thread of this process (the load generator, receivers, probes) to LOAD_CORE. */
export function pinSelf(): void {
  execFileSync('taskset', ['-a', '-pc', LOAD_CORE, String(process.pid)], { stdio: 'ignore' });
}

/** `cmd args` prefixed to run on `core`, when taskset is there. */
export function pinned(core: string, cmd: string, args: string[], on: boolean): [string, string[]] {
  return on ? ['taskset', ['-c', core, cmd, ...args]] : [cmd, args];
}

export interface Stats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return { n: s.length, p50: r(percentile(s, 0.5)), p99: r(percentile(s, 0.99)), max: r(s.at(-1) ?? NaN) };
}

/**
 * Callback receivers on `n` ports of 127.0.0.1 (n distinct origins); each arrival is timed
 * by its webhook-id (the request id) and answered 200 at once.
 */
export async function receivers(n: number) {
  const arrived = new Map<string, number>();
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const id = req.headers['webhook-id'];
        if (typeof id === 'string' && !arrived.has(id)) arrived.set(id, performance.now());
        res.writeHead(200).end();
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    ports.push((server.address() as AddressInfo).port);
  }
  return {
    arrived,
    url: (i: number) => `http://127.0.0.1:${ports[i % n]}/cb`,
    close: async () => {
      for (const s of servers) s.closeAllConnections();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}

const agent = new Agent({ connections: 256, keepAliveTimeout: 30_000 });

export interface Sent {
  id: string | null;
  status: number;
  sentAt: number;
  ms: number;
}

/** One POST of a start request; `ms` is the time to its answer. */
export async function post(port: number, body: object): Promise<Sent> {
  const sentAt = performance.now();
  try {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/charging-session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      dispatcher: agent,
    });
    const json = (await res.json().catch(() => ({}))) as { request_id?: string };
    return { id: json.request_id ?? null, status: res.status, sentAt, ms: performance.now() - sentAt };
  } catch {
    return { id: null, status: 0, sentAt, ms: performance.now() - sentAt };
  }
}

/** Open loop: `rate` POSTs a second for `seconds` (or until `until` resolves), not waiting for answers. */
export async function openLoop(
  port: number,
  rate: number,
  seconds: number,
  body: (i: number) => object,
  until?: Promise<unknown>,
): Promise<Sent[]> {
  let stop = false;
  void until?.then(() => (stop = true));
  const pending: Promise<Sent>[] = [];
  const t0 = performance.now();
  for (let i = 0; !stop && (until || i < rate * seconds); i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(post(port, body(i)));
  }
  return Promise.all(pending);
}

/** GETs `path` n times one after another; latencies in ms. */
export async function getLatency(port: number, path: string, n: number): Promise<Stats> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { dispatcher: agent });
    await res.arrayBuffer();
    ms.push(performance.now() - t0);
  }
  return stats(ms);
}

/**
 * A writer beside an import: tries BEGIN IMMEDIATE with no busy timeout about once a
 * millisecond. For each stretch of refusals: from the first refusal to the next success
 * (an upper bound of how long the import held the lock, inflated when this process itself
 * was not scheduled) and from the first to the last refusal (a lower bound). The longest
 * pause between two of its own tries says how far to trust the upper bound on a busy box.
 * Also notes when acl_current switches.
 */
export function lockProbe(dbPath: string) {
  const db = new Database(dbPath);
  db.pragma('busy_timeout = 0');
  const begin = db.prepare('BEGIN IMMEDIATE');
  const rollback = db.prepare('ROLLBACK');
  const gen = db.prepare('SELECT gen FROM acl_current').pluck();
  let running = true;
  let upper = 0;
  let lower = 0;
  let refusals = 0;
  let busySince: number | null = null;
  let lastRefused = 0;
  let lastTry = performance.now();
  let longestPause = 0;
  const t0 = performance.now();
  const first = gen.get();
  let switchedAt: number | null = null;
  const done = (async () => {
    while (running) {
      const now = performance.now();
      longestPause = Math.max(longestPause, now - lastTry);
      lastTry = now;
      try {
        begin.run();
        rollback.run();
        if (busySince !== null) {
          upper = Math.max(upper, now - busySince);
          lower = Math.max(lower, lastRefused - busySince);
        }
        busySince = null;
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
        if (busySince === null) refusals++;
        busySince ??= now;
        lastRefused = now;
      }
      try {
        if (switchedAt === null && gen.get() !== first) switchedAt = now - t0;
      } catch {}
      await new Promise((r) => setTimeout(r, 1));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      db.close();
      return {
        longestHoldMs: { atLeast: Math.round(lower), atMost: Math.round(upper) },
        probePausedUpToMs: Math.round(longestPause),
        refusedStretches: refusals,
        switchedAtS: switchedAt === null ? null : Math.round(switchedAt / 100) / 10,
      };
    },
  };
}
