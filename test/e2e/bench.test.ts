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

// `npm run bench` end to end at tiny sizes (1 s loads, one round, 300 queued requests, the
// scaling rows with 3,000 ACL entries):
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
      SCALING_ACL_ROWS: '3000', SCALING_SECONDS: '1', SCALING_BACKLOG: '500',
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
    // The scaling rows (bench/scaling.ts) at tiny sizes: the import of 3,000 entries twice,
    // the malformed line refused with the list unchanged, every other row measured.
    const sc = r.scaling;
    assert.equal(sc.aclRows, 3000);
    assert.equal(sc.aclImport.length, 2);
    for (const imp of sc.aclImport) assert.ok(imp.peakRssMiB > 0 && imp.cpuS >= 0 && imp.wallS > 0, JSON.stringify(imp));
    assert.equal(sc.aclImportBadLine.unchanged, true);
    assert.ok(sc.decisionLatency.decideMicroseconds.entries3000.p50 > 0);
    assert.equal(sc.healthAndMetricsMs.backlog.openRequests, 500);
    assert.ok(sc.acceptPerS.best.empty > 0 && sc.acceptPerS.best.backlog > 0);
    for (const x of [...sc.callbackOrigins500PerS.origins1, ...sc.callbackOrigins500PerS.origins1000]) assert.equal(x.lost, 0);
    assert.match(table, /acl import --replace 3,000 over a 1-entry list/);
    assert.match(table, /1000 callback origin\(s\) @500\/s/);
  });
});
