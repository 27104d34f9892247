import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { Pool } from 'undici';

export { freePort } from '../../support/port.ts';

// Load and measurement helpers of the fault suite: a seeded random source (every run prints
// its seed; FAULT_SEED=<n> replays one), a bounded load generator on loopback, RSS sampling
// of a child process, and counting callbacks against the database.

export const STATION = '123e4567-e89b-12d3-a456-426614174000';

/** mulberry32: small, seedable, good enough to place faults. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function faultSeed(): number {
  return process.env.FAULT_SEED ? Number(process.env.FAULT_SEED) : Math.floor(Math.random() * 2 ** 31);
}

/** Resident set size of a process in bytes (Linux /proc), null once it is gone. */
export function rssOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export const MiB = 1024 * 1024;

export interface LoadResult {
  /** request_id of every 202, in answer order. */
  accepted: string[];
  /** Answers by HTTP status. */
  statuses: Map<number, number>;
  /** Requests that got no HTTP answer (connection refused or cut): nothing was promised. */
  transportErrors: number;
  /** Every 503 carried a Retry-After. */
  retryAfterMissing: number;
  /** Slowest answer seen, ms. */
  maxLatencyMs: number;
  sent: number;
}

export interface LoadOptions {
  /** Origin of the service, e.g. http://127.0.0.1:8080 (a function when it changes). */
  base: string;
  callbackUrl: string;
  concurrency: number;
  /** Stop after this many requests were answered (transport errors do not count)... */
  total: number;
  /** ...or at this time (Date.now() ms), whichever comes first. */
  until: number;
  /** Also stop when this returns true. */
  stop?: () => boolean;
  /** Pause after a transport error (the service is restarting). */
  errorPauseMs?: number;
  /** Token prefix; tokens are <prefix><10 digits>, 20-80 characters. */
  tokenPrefix?: string;
  /** Called with each answer (status, ms). */
  onAnswer?: (status: number, ms: number) => void;
}

/**
 * Closed-loop load: `concurrency` clients each send one request at a time, each a new
 * request (a distinct token), until `total` were sent or the time is up. Bounded in count
 * and time, loopback only.
 */
export async function load(opts: LoadOptions): Promise<LoadResult> {
  const pool = new Pool(opts.base, { connections: opts.concurrency, pipelining: 1 });
  const result: LoadResult = { accepted: [], statuses: new Map(), transportErrors: 0, retryAfterMissing: 0, maxLatencyMs: 0, sent: 0 };
  const prefix = opts.tokenPrefix ?? 'fault-token-';
  // Requests answered or on their way; a transport error gives its slot back.
  let taken = 0;
  async function client(): Promise<void> {
    while (taken < opts.total && Date.now() < opts.until && !opts.stop?.()) {
      taken++;
      const i = result.sent++;
      const body = JSON.stringify({ station_id: STATION, driver_token: `${prefix}${String(i).padStart(10, '0')}`, callback_url: opts.callbackUrl });
      const t0 = performance.now();
      try {
        const res = await pool.request({
          path: '/api/v1/charging-session',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          headersTimeout: 15_000,
          bodyTimeout: 15_000,
        });
        const text = await res.body.text();
        const ms = performance.now() - t0;
        result.maxLatencyMs = Math.max(result.maxLatencyMs, ms);
        result.statuses.set(res.statusCode, (result.statuses.get(res.statusCode) ?? 0) + 1);
        opts.onAnswer?.(res.statusCode, ms);
        if (res.statusCode === 202) result.accepted.push((JSON.parse(text) as { request_id: string }).request_id);
        else if (res.statusCode === 503 && !res.headers['retry-after']) result.retryAfterMissing++;
      } catch {
        taken--;
        result.transportErrors++;
        await new Promise((r) => setTimeout(r, opts.errorPauseMs ?? 20));
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, client));
  } finally {
    await pool.destroy();
  }
  return result;
}

/** Callbacks the receiver saw, by webhook-id. */
export function callbackCounts(calls: Array<{ headers: Record<string, unknown> }>): Map<string, number> {
  const m = new Map<string, number>();
  for (const c of calls) {
    const id = String(c.headers['webhook-id']);
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

/** Opens the service's file read-only (WAL readers never block the writer). */
export function readDb(path: string): Database.Database {
  return new Database(path, { readonly: true, fileMustExist: true });
}

/** Rows by state, for messages. */
export function statesOf(path: string): Record<string, number> {
  const db = readDb(path);
  try {
    const rows = db.prepare('SELECT state, COUNT(*) AS n FROM charging_requests GROUP BY state').all() as Array<{ state: string; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  } finally {
    db.close();
  }
}

/** Recorded callback attempts by request id. */
export function recordedAttempts(path: string): Map<string, number> {
  const db = readDb(path);
  try {
    const rows = db.prepare('SELECT request_id, COUNT(*) AS n FROM callback_attempts GROUP BY request_id').all() as Array<{ request_id: string; n: number }>;
    return new Map(rows.map((r) => [r.request_id, r.n]));
  } finally {
    db.close();
  }
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
