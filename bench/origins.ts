// Many callback origins at 500/s for 8 s against chargegate run from source with
// bench/probe.ts (each thread's heap peak on stderr): does a worker thread's bounded heap
// (src/dispatch/pool.ts WORKER_HEAP) hold a connection pool per origin? One JSON line:
// accepted, answers by status, callbacks received, RSS peak of the service.
//
//   node bench/origins.ts [origins=1000]
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { ROOT, startContestant, STATION, TOKEN } from './contestants.ts';
import { pinSelf } from './lib.ts';
pinSelf();
const N = Number(process.argv[2] ?? 1000);
const ports: number[] = [];
let got = 0;
for (let i = 0; i < N; i++) {
  const s = createServer((req, res) => { req.resume(); req.on('end', () => { got++; res.writeHead(200).end(); }); });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  ports.push((s.address() as AddressInfo).port);
}
process.env.BENCH_CG_CMD = JSON.stringify([process.execPath, '--import', join(ROOT, 'bench', 'probe.ts'), join(ROOT, 'bin', 'chargegate.ts'), 'serve']);
const work = mkdtempSync(join(tmpdir(), 'cg-or-'));
const c = await startContestant('chargegate', work, { env: { LOG_LEVEL: 'warn' } });
const pool = new Pool(`http://127.0.0.1:${c.port}`, { connections: 256 });
const total = 500 * 8; let sent = 0; let ok = 0; let answered = 0; const codes: Record<number, number> = {};
const t0 = performance.now();
await new Promise<void>((done) => {
  const tick = () => {
    const due = Math.min(total, Math.floor((performance.now() - t0) / 2));
    while (sent < due) {
      const i = sent++;
      pool.request({ path: '/api/v1/charging-session', method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: `http://127.0.0.1:${ports[i % N]}/cb` }) })
        .then(async (r) => { await r.body.dump(); codes[r.statusCode] = (codes[r.statusCode] ?? 0) + 1; if (r.statusCode === 202) ok++; }, () => undefined).finally(() => answered++);
    }
    if (sent >= total) return done();
    setTimeout(tick, 1);
  };
  tick();
});
const end = performance.now() + 30_000;
while ((answered < total || got < ok) && performance.now() < end) await new Promise((r) => setTimeout(r, 50));
console.log(JSON.stringify({ origins: N, accepted: ok, answered, codes, callbacks: got, seconds: Math.round(performance.now() - t0) / 1000, rss_peak_mib: Math.round(c.rss().peak) }));
await c.stop();
await pool.close();
process.exit(0);
