// CPU per accept on the hot path (intake -> queue -> group commit on a real SQLite file,
// synchronous=FULL), for comparing two source trees run one after the other, alternating:
//   git archive <base> src workers package.json | tar -x -C /tmp/base && ln -s $PWD/node_modules /tmp/base/
//   for i in 1 2 3 4 5; do npx tsx bench/acceptcpu.ts /tmp/base base; npx tsx bench/acceptcpu.ts $PWD branch; done
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
const [root, label] = process.argv.slice(2) as [string, string];
const { openDb } = await import(`${root}/src/queue/db.ts`);
const { migrate } = await import(`${root}/src/queue/migrate.ts`);
const { createIntake } = await import(`${root}/src/queue/intake.ts`);
const { createDepth } = await import(`${root}/src/queue/depth.ts`);
const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'cg-hot-'));
const db = openDb(join(dir, 'h.db'), { busyTimeoutMs: 1000 });
migrate(db);
let intake: { accept(b: unknown, k?: string | null, c?: string | null): Promise<unknown> };
let sqliteQueue: unknown = null;
try {
  sqliteQueue = (await import(`${root}/src/queue/sqlite.ts`)).createSqliteQueue;
} catch {}
if (sqliteQueue) {
  const queue = (sqliteQueue as Function)(db, { path: join(dir, 'h.db'), maxCacheEntries: 1000, keysRequired: false });
  const depth = await createDepth(queue, 100_000_000);
  intake = createIntake({ queue, depth, log, onAccepted: () => undefined });
} else {
  const { createStore } = await import(`${root}/src/queue/store.ts`);
  const { createCommitter } = await import(`${root}/src/queue/committer.ts`);
  const store = createStore(db);
  const depth = createDepth(store, 100_000_000);
  intake = createIntake({ store, committer: createCommitter(db), depth, log, onAccepted: () => undefined });
}
const body = { station_id: '123e4567-e89b-12d3-a456-426614174000', driver_token: 'ABCD-efgh1234567890_~valid.token', token_type: 'RFID', callback_url: 'http://127.0.0.1:1/cb' };
const BATCH = 200;
const ROUNDS = Number(process.env.ROUNDS ?? 150);
// warm-up
for (let r = 0; r < 20; r++) await Promise.all(Array.from({ length: BATCH }, () => intake.accept(body)));
const c0 = process.cpuUsage();
const t0 = performance.now();
for (let r = 0; r < ROUNDS; r++) await Promise.all(Array.from({ length: BATCH }, () => intake.accept(body)));
const c = process.cpuUsage(c0);
const wall = performance.now() - t0;
const n = BATCH * ROUNDS;
console.log(JSON.stringify({ label, accepts: n, cpu_us_per_accept: +(((c.user + c.system) / n)).toFixed(2), wall_us_per_accept: +((wall * 1000) / n).toFixed(2) }));
