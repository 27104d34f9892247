// Decision latency by source of the decision: local list, authorizer cache, upstream.
//
//   npx node --import tsx bench/decisions.ts [--n 2000] [--upstream-delay-ms 0]
//
// Runs the real worker task file in a real piscina pool against a real SQLite file and a
// fake upstream authority on 127.0.0.1:0 (json protocol, answers at once unless
// --upstream-delay-ms), the way the dispatcher does: a `decide` task (local list, cache),
// then for referred items an `authorize` task (upstream). One item per task, so each
// sample is one request's latency including the thread hops. Prints p50/p99 per source
// at concurrency 1 and 32 (requests in flight).

import { clockMs } from '../src/core/gate.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { aclAdd } from '../src/cli/acl.ts';
import { loadConfig } from '../src/config.ts';
import { hashToken } from '../src/core/token.ts';
import type { AuthorizeTask, Decision, DecideTask } from '../src/core/types.ts';
import { authorizerPlan } from '../src/dispatch/authorizer.ts';
import { createPool } from '../src/dispatch/pool.ts';
import { openDb } from '../src/queue/db.ts';
import { migrate } from '../src/queue/migrate.ts';

const { values } = parseArgs({ options: { n: { type: 'string', default: '2000' }, 'upstream-delay-ms': { type: 'string', default: '0' } } });
const N = Number(values.n);
const DELAY = Number(values['upstream-delay-ms']);
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const THREADS = 2;

const authority = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const answer = () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"allowed","reason":"bench"}');
    if (DELAY > 0) setTimeout(answer, DELAY);
    else answer();
  });
});
await new Promise<void>((r) => authority.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${(authority.address() as AddressInfo).port}/authorize`;

const dir = mkdtempSync(join(tmpdir(), 'cg-bench-'));
const dbPath = join(dir, 'bench.db');
const db = openDb(dbPath, { busyTimeoutMs: 5000 });
migrate(db);
const tok = (kind: string, i: number) => `${kind}-${String(i).padStart(8, '0')}-0123456789`;
const cacheInsert = db.prepare(`INSERT INTO authorizer_cache (token_hash, station_id, status, reason, stored_at, fresh_until, last_used_at)
  VALUES (?, ?, 'allowed', 'bench', ?, ?, ?)`);
db.transaction(() => {
  const now = Date.now();
  for (let i = 0; i < N; i++) {
    aclAdd(db, { token: tok('local', i), stations: [], expires_at: null, blocked: false, note: null });
    cacheInsert.run(hashToken(tok('cached', i)), STATION, now, now + 3_600_000, now);
  }
})();
db.close();

const config = loadConfig({ DB_PATH: dbPath, WORKERS: String(THREADS), AUTHORIZER_URL: url, AUTHORIZER_MAX_CONCURRENCY: '64', AUTHORIZATION_TIMEOUT_MS: '5000' });
const plan = authorizerPlan(config)!;
const pool = createPool({ filename: fileURLToPath(new URL('../workers/task.ts', import.meta.url)), threads: THREADS, concurrency: 64 });

/** One request through the chain as the dispatcher runs it; resolves with its decision and ms. */
async function decideOne(id: string, token: string): Promise<{ d: Decision; ms: number }> {
  const t0 = performance.now();
  const first: DecideTask = { dbPath, now: Date.now(), items: [{ id, station_id: STATION, driver_token: token, token_type: 'RFID' }], authorizer: plan.decide };
  let [d] = (await pool.run(first, { name: 'decide' })) as Decision[];
  if (d!.referral) {
    const second: AuthorizeTask = { authorizer: plan.settings, now: Date.now(), sentAt: clockMs(), upstreamBy: clockMs() + 4000, items: [{ id, station_id: STATION, driver_token: token, token_type: 'RFID', referral: d!.referral }] };
    [d] = (await pool.run(second, { name: 'authorize' })) as Decision[];
  }
  return { d: d!, ms: performance.now() - t0 };
}

async function measure(kind: string, concurrency: number): Promise<{ source: string; samples: number[] }> {
  const samples: number[] = [];
  const sources = new Set<string>();
  let next = 0;
  // Upstream tokens are new every round so neither cache nor coalescing answers for them.
  const prefix = kind === 'upstream' ? `upstream${concurrency}` : kind;
  async function lane(): Promise<void> {
    while (next < N) {
      const i = next++;
      const { d, ms } = await decideOne(`${kind}-${i}`, tok(prefix, i));
      sources.add(`${d.source}/${d.status}`);
      samples.push(ms);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { source: [...sources].join(','), samples };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

// Warm the threads, their SQLite connections and the upstream keep-alive connections.
for (let i = 0; i < 200; i++) await decideOne(`warm-${i}`, tok(i % 2 ? 'local' : 'warm', i));

const rows: string[] = [];
for (const concurrency of [1, 32]) {
  for (const kind of ['local', 'cached', 'upstream']) {
    const { source, samples } = await measure(kind, concurrency);
    const s = samples.sort((a, b) => a - b);
    rows.push(`| ${kind.padEnd(8)} | ${source.padEnd(22)} | ${String(concurrency).padStart(11)} | ${String(s.length).padStart(5)} | ${pct(s, 50).toFixed(3).padStart(8)} | ${pct(s, 99).toFixed(3).padStart(8)} |`);
  }
}

console.log(`decision latency, ms (node ${process.version}, ${THREADS} worker threads, fake authority answering after ${DELAY} ms)`);
console.log('| decision | source/status          | in flight   |     n |      p50 |      p99 |');
console.log('|----------|------------------------|-------------|-------|----------|----------|');
for (const r of rows) console.log(r);

await pool.destroy();
authority.closeAllConnections();
authority.close();
rmSync(dir, { recursive: true, force: true });
