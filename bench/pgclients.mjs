// pg vs postgres (porsager), the measurement behind the choice in docs/postgres.md: a
// group-committed insert batch (one transaction per batch of B rows, as one event-loop
// turn's accepts) and a FOR UPDATE SKIP LOCKED claim of 100 rows. `pg` is not a dependency:
//   npm install --no-save pg@8.23.1 && node bench/pgclients.mjs [seconds]
// PG_URL: an admin connection (default postgres://postgres@127.0.0.1:5432/postgres); a
// database cg_cmp is created and dropped. The claim leaves rows due at once, so they cycle
// (a throughput figure only).
import pg from 'pg';
import postgres from 'postgres';
import { randomUUID } from 'node:crypto';
const URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SECONDS = Number(process.argv[2] ?? 4);
const B = 100;
const admin = postgres(URL, { max: 1, onnotice: () => {} });
await admin.unsafe('DROP DATABASE IF EXISTS cg_cmp');
await admin.unsafe('CREATE DATABASE cg_cmp');
await admin.end();
const DB = URL.replace(/\/[^/]*$/, '/cg_cmp');
const setup = postgres(DB, { max: 1, onnotice: () => {} });
await setup.unsafe(`CREATE TABLE q (id text PRIMARY KEY, station_id text NOT NULL, driver_token text, token_hash text NOT NULL,
  callback_url text NOT NULL, origin text, state text NOT NULL, created_at bigint NOT NULL, updated_at bigint NOT NULL,
  due_at bigint NOT NULL, locked_at bigint, claim_count int NOT NULL DEFAULT 0);
  CREATE INDEX q_undecided ON q (due_at, created_at) WHERE state IN ('queued','authorizing');`);
await setup.end();
const INSERT = `INSERT INTO q (id, station_id, driver_token, token_hash, callback_url, origin, state, created_at, updated_at, due_at)
  VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7, $7)`;
const CLAIM = `UPDATE q SET state = 'authorizing', locked_at = $1, due_at = $1, claim_count = claim_count + 1, updated_at = $1
  WHERE id IN (SELECT id FROM q WHERE state IN ('queued','authorizing') AND due_at <= $1 ORDER BY due_at LIMIT 100 FOR UPDATE SKIP LOCKED)
  RETURNING id, claim_count`;
const row = () => { const t = Date.now(); return [randomUUID(), 'st', 'ABCD-efgh1234567890_~valid.token', 'h', 'http://127.0.0.1:1/cb', 'http://127.0.0.1:1', t]; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; };

async function loop(name, concurrency, fn) {
  const lat = [];
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) { const t = performance.now(); n += await fn(); lat.push(performance.now() - t); }
  }));
  const out = { name, per_s: Math.round(n / SECONDS), p50_ms: +pct(lat, 0.5).toFixed(2), p99_ms: +pct(lat, 0.99).toFixed(2) };
  console.log(JSON.stringify(out));
  return out;
}

const libs = {
  async porsager() {
    const sql = postgres(DB, { max: 4, onnotice: () => {} });
    const insert = () => sql.begin((tx) => Array.from({ length: B }, () => tx.unsafe(INSERT, row(), { prepare: true }))).then(() => B);
    const claim = () => sql.unsafe(CLAIM, [Date.now()], { prepare: true }).then((r) => r.length);
    return { insert, claim, end: () => sql.end() };
  },
  async pg() {
    const pool = new pg.Pool({ connectionString: DB, max: 4 });
    const insert = async () => {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        // node-postgres queues queries on the client and sends the next once the previous answered.
        await Promise.all(Array.from({ length: B }, () => c.query({ name: 'ins', text: INSERT, values: row() })));
        await c.query('COMMIT');
      } finally { c.release(); }
      return B;
    };
    const claim = () => pool.query({ name: 'claim', text: CLAIM, values: [Date.now()] }).then((r) => r.rowCount);
    return { insert, claim, end: () => pool.end() };
  },
};
const results = [];
for (const round of [0, 1]) {
  for (const name of round ? ['pg', 'porsager'] : ['porsager', 'pg']) {
    const l = await libs[name]();
    results.push(await loop(`${name} insert batch of ${B} (rows/s), 2 groups at once`, 2, l.insert));
    results.push(await loop(`${name} SKIP LOCKED claim of 100 (rows/s), 2 claimers`, 2, l.claim));
    await l.end();
  }
}
const a = postgres(URL, { max: 1 }); await a.unsafe('DROP DATABASE cg_cmp'); await a.end();
