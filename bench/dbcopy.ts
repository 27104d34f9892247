// `chargegate db copy --to postgres://…` as an operator runs it, timed from outside:
//
//   npx node --import tsx bench/dbcopy.ts [--requests 100000] [--acl 10000] [--rounds 2] [--batch 1000]
//
// Builds a SQLite file of --requests requests (90% delivered with one callback attempt,
// 5% failed after three, 5% open, a third of these claimed), --acl ACL entries (every
// third scoped to a station), a key per fifth request, 1,000 unknown tokens and cache
// entries. Each round, in turn: `chargegate backup` of the file (the baseline: reading
// the whole file, same process start, same box, same moment), `db copy` into a fresh
// database, and `db copy` again over it (nothing new: the cost of a rerun). Each is the
// real CLI in a child process under /usr/bin/time (peak RSS). PostgreSQL is the server at
// CHARGEGATE_TEST_PG (default the local one); the databases are dropped after.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { openDb } from '../src/queue/db.ts';
import { migrate } from '../src/queue/migrate.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '100000' },
    acl: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '2' },
    batch: { type: 'string', default: '1000' },
  },
});
const REQUESTS = Number(values.requests);
const ACL = Number(values.acl);
const ROUNDS = Number(values.rounds);
const BATCH = ['--batch-size', values.batch!];
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const ROOT = resolve(import.meta.dirname, '..');
const ADMIN = process.env.CHARGEGATE_TEST_PG || 'postgres://postgres@127.0.0.1:5432/postgres';

const dir = mkdtempSync(join(tmpdir(), 'cg-bench-dbcopy-'));
const dbPath = join(dir, 'cg.db');

function build(): void {
  const db = openDb(dbPath, { busyTimeoutMs: 1000, createDir: true });
  migrate(db);
  const now = Date.now();
  const req = db.prepare(`INSERT INTO charging_requests (id, station_id, driver_token, token_hash, token_mask,
      callback_url, state, created_at, updated_at, due_at, locked_at, claim_count, attempts, decision_status,
      decision_reason, decision_source,
      decision_latency_ms, decided_at, finished_at, origin, token_type)
    VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, 'acl', 2, ?, ?, 'http://receiver.example:8080', 'RFID')`);
  const att = db.prepare(`INSERT INTO callback_attempts (request_id, attempt, started_at, duration_ms,
      http_status, error, outcome)
    VALUES (?, ?, ?, 12, ?, ?, ?)`);
  const key = db.prepare('INSERT INTO idempotency_keys (key, body_hash, request_id, created_at) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < REQUESTS; i++) {
      const id = `0190${String(i).padStart(8, '0')}-0000-7000-8000-${randomBytes(6).toString('hex')}`;
      const at = now - (REQUESTS - i) * 10;
      const kind = i % 20 === 0 ? 'open' : i % 20 === 1 ? 'failed' : 'delivered';
      const hash = randomBytes(16).toString('hex');
      const state = kind === 'open' ? (i % 3 === 0 ? 'authorizing' : 'delivering') : kind;
      const decided = state === 'authorizing' ? null : 'allowed';
      const locked = kind === 'open' && i % 60 < 20 ? at : null;
      const attempts = kind === 'delivered' ? 1 : kind === 'failed' ? 3 : 0;
      req.run(id, STATION, hash, 'ABCD…1234', 'http://receiver.example:8080/cb', state, at, at, at + 60_000, locked,
        attempts,
        decided, decided ? 'ok' : null, decided ? at + 2 : null, kind === 'open' ? null : at + 20);
      for (let a = 1; a <= attempts; a++) {
        const last = a === attempts;
        att.run(id, a, at + a, kind === 'delivered' ? 200 : 503, kind === 'delivered' ? null : 'HTTP 503',
          kind === 'delivered' ? 'delivered' : last ? 'failed' : 'retry');
      }
      if (i % 5 === 0) key.run(`key-${i}`, hash, id, at);
    }
    const acl = db.prepare('INSERT INTO acl (token, blocked, note) VALUES (?, 0, ?)');
    const scope = db.prepare('INSERT INTO acl_stations (token, station_id) VALUES (?, ?)');
    for (let i = 0; i < ACL; i++) {
      const token = `bench-copy-${String(i).padStart(12, '0')}`;
      acl.run(token, `row ${i}`);
      if (i % 3 === 0) scope.run(token, STATION);
    }
    const unknown = db.prepare(`INSERT INTO unknown_tokens (token_hash, station_id, token_mask, seen_count,
        first_seen_at, last_seen_at, last_status, last_reason, last_request_id)
      VALUES (?, ?, 'ABCD…1234', 1, ?, ?, 'not_allowed', 'unknown token', 'x')`);
    const cache = db.prepare(`INSERT INTO authorizer_cache (token_hash, token_type, station_id, status, reason,
        stored_at, fresh_until,
        last_used_at) VALUES (?, 'RFID', ?, 'allowed', 'ok', ?, ?, ?)`);
    for (let i = 0; i < 1000; i++) {
      unknown.run(`u${i}`, STATION, now, now);
      cache.run(`c${i}`, STATION, now, now + 60_000, now);
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

async function timed(args: string[]): Promise<{ ms: number; rssMb: number; out: string }> {
  const timeFile = join(dir, 'time.txt');
  const t0 = performance.now();
  const argv = ['-f', '%M', '-o', timeFile, process.execPath, join(ROOT, 'bin/chargegate.ts'), ...args];
  const child = spawn('/usr/bin/time', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b));
  child.stderr.on('data', (b: Buffer) => (out += b));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`chargegate ${args.join(' ')} exited ${code}\n${out}`);
  return { ms, rssMb: Number(readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)) / 1024, out };
}

const admin = postgres(ADMIN, { max: 1, onnotice: () => undefined });
const made: string[] = [];
try {
  const b0 = performance.now();
  build();
  const mb = (statSync(dbPath).size / 1e6).toFixed(1);
  const took = ((performance.now() - b0) / 1000).toFixed(1);
  console.log(`file: ${REQUESTS} requests, ${ACL} ACL entries, ${mb} MB, built in ${took} s`);
  for (let r = 1; r <= ROUNDS; r++) {
    const backup = await timed(['backup', join(dir, `b${r}.db`), '--db', dbPath]);
    const name = `cg_bench_dbcopy_${randomBytes(5).toString('hex')}`;
    await admin.unsafe(`CREATE DATABASE ${name}`);
    made.push(name);
    const u = new URL(ADMIN);
    u.pathname = `/${name}`;
    const copy = await timed(['db', 'copy', '--to', u.toString(), '--db', dbPath, ...BATCH]);
    const again = await timed(['db', 'copy', '--to', u.toString(), '--db', dbPath, ...BATCH]);
    const check = postgres(u.toString(), { max: 1, onnotice: () => undefined });
    const [row] = await check`SELECT (SELECT COUNT(*) FROM charging_requests)::int AS req,
      (SELECT COUNT(*) FROM acl)::int AS acl`;
    await check.end();
    if (row!.req !== REQUESTS || row!.acl !== ACL) {
      throw new Error(`copied ${row!.req} requests, ${row!.acl} ACL entries`);
    }
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    console.log(`round ${r}: backup (baseline) ${s(backup.ms)}; db copy ${s(copy.ms)} ` +
      `(${(copy.ms / backup.ms).toFixed(1)}× the backup, peak RSS ${copy.rssMb.toFixed(0)} MB); rerun, nothing new ` +
      `${s(again.ms)}`);
  }
} finally {
  for (const name of made) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(dir, { recursive: true, force: true });
}
