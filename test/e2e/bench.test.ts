import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { buildBinary } from '../support/binary.ts';
import { PG_ADMIN_URL, pgReachable } from '../support/pgadmin.ts';
import { tempDir } from '../support/tmp.ts';

// `npm run bench` end to end at tiny sizes (1 s loads, one round, 300 queued requests):
// every phase runs against the built executable and bare Hapi (and the peer when its
// packages are installed and redis-server is here; the executable on PostgreSQL, one and two
// instances, when the local server answers), and results.json holds every figure.
// Figures are not judged here: timing belongs to the bench itself.

const root = fileURLToPath(new URL('../../', import.meta.url));
const PG_URL = PG_ADMIN_URL;

describe('npm run bench (smoke)', () => {
  it('runs every phase and writes results.json with each contestant\'s figures', { timeout: 300_000 }, async (t) => {
    await buildBinary();
    const out = join(tempDir(t), 'results.json');
    const peer = existsSync(join(root, 'bench', 'peer', 'node_modules', 'bullmq'));
    const pg = await pgReachable();
    const env = {
      ...process.env, BENCH_SECONDS: '1', BENCH_ROUNDS: '1', BENCH_STARTS: '1', BENCH_DRAIN: '300', BENCH_CONNECTIONS: '10',
      BENCH_RATES: '100', BENCH_OUT: out, BENCH_PEER: peer ? '1' : '0', BENCH_PG: pg ? '1' : '0', BENCH_PG_URL: PG_URL,
    };
    let benchPid = 0;
    const table = await new Promise<string>((resolve, reject) => {
      const opts = { cwd: root, env, timeout: 240_000, maxBuffer: 16 << 20 };
      benchPid = execFile(process.execPath, [join(root, 'bench', 'run.ts')], opts, (err, stdout, stderr) => {
        if (err) reject(new Error(`bench failed: ${err.message}\n${stderr.slice(-4000)}`));
        else resolve(stdout);
      }).pid!;
    });
    const r = JSON.parse(readFileSync(out, 'utf8'));
    const pgNames = pg ? ['pg1', 'pg2'] : [];
    const names = [...(peer ? ['chargegate', 'bare', 'peer'] : ['chargegate', 'bare']), ...pgNames];
    assert.deepEqual(r.method.contestants, names);
    for (const n of names) {
      assert.ok(r.startup[n].ready_ms > 0, `${n} started`);
      assert.ok(r.saturation['10'][n].median.rps2xx > 0, `${n} answered under saturation`);
      assert.equal(r.saturation['10'][n].median.non2xx, 0, `${n}: only 2xx`);
      assert.equal(r.open_loop['100'][n].median.non2xx, 0);
      assert.ok(Number.isFinite(r.open_loop['100'][n].median.accept_p99));
    }
    for (const n of names.filter((x) => x !== 'bare')) {
      assert.equal(r.open_loop['100'][n].median.callbacks_missing, 0, `${n}: every callback of the open loop arrived`);
      assert.ok(Number.isFinite(r.open_loop['100'][n].median.callback_p99));
      if (!pgNames.includes(n)) assert.equal(r.drain[n].delivered, 300, `${n} drained the queue`);
    }
    if (pg) {
      assert.match(table, /pg x1 +pg x2/);
      // Every throwaway database of this run was dropped.
      const sql = postgres(PG_URL, { max: 1, onnotice: () => undefined });
      const left = await sql`SELECT datname FROM pg_database WHERE datname LIKE ${`cg_bench_${benchPid}_%`}`;
      await sql.end();
      assert.deepEqual(left.map((x) => x.datname), []);
    }
    assert.match(table, /accepted req\/s @10 conns/);
    assert.match(table, /drain 300 queued/);
  });
});
