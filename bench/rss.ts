// RSS peak of builds of the executable, A/B: saturation at N connections (wrk) and the drain
// of a queue of queued requests, each in a fresh process, rounds alternating the builds.
// Pinning and priority as bench/run.ts (bench/lib.ts).
//
//   node bench/rss.ts [--rounds 3] [--seconds 10] [--connections 1000] [--drain 100000] \
//     --variant 'before:{"@bin":"/tmp/cg-a"}' --variant 'after:{"@bin":"/tmp/cg-b"}'
//
// `@bin` runs another build; `@flags` runs from source with those node flags (V8 heap flags
// tried before they go into build.mjs) and bench/probe.ts, which prints each thread's heap peak.
// Per variant and round: accepted/s and VmHWM (MiB) under saturation; drain seconds, req/s
// and VmHWM; the medians per variant.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { prefill, ROOT, startContestant, STATION, TOKEN } from './contestants.ts';
import { medianRow, parseVariant, pinSelf, pinned, sleep, start, type Child } from './lib.ts';
import { saturate } from './saturate.ts';

const { values: o } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '1000' },
    drain: { type: 'string', default: '100000' },
    variant: { type: 'string', multiple: true, default: ['default:{}'] },
  },
});
const variants = o.variant!.map(parseVariant);

pinSelf();
const work = mkdtempSync(join(tmpdir(), 'cg-rss-'));

async function receiver(): Promise<Child> {
  const [cmd, args] = pinned('load', process.execPath, [join(ROOT, 'bench', 'receiver.ts')]);
  return start(cmd, args, {});
}
async function received(rx: Child): Promise<number> {
  return ((await (await fetch(`http://127.0.0.1:${rx.port}/stats`)).json()) as { received: number }).received;
}

const runs = new Map<string, Array<Record<string, number>>>();
try {
  const rx = await receiver();
  const body = JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: `http://127.0.0.1:${rx.port}/cb` });
  const n = Number(o.drain);
  for (let r = 0; r < Number(o.rounds); r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(k + r) % variants.length]!;
      const { '@bin': bin, '@flags': flags, ...env } = v.env;
      const opts = bin ? { bin } : {};
      // `@flags`: run from source with these node flags and bench/probe.ts (heap peaks on stderr).
      if (flags !== undefined) {
        process.env.BENCH_CG_CMD = JSON.stringify([process.execPath, ...flags.split(' ').filter(Boolean),
          '--import', join(ROOT, 'bench', 'probe.ts'), join(ROOT, 'bin', 'chargegate.ts'), 'serve']);
      } else delete process.env.BENCH_CG_CMD;
      const c = await startContestant('chargegate', work, { env: { ...env, QUEUE_MAX_SIZE: '10000000' }, ...opts });
      await saturate(work, c.port, Number(o.connections), 2, body);
      const s = await saturate(work, c.port, Number(o.connections), Number(o.seconds), body);
      const satPeak = c.rss().peak;
      await c.stop();

      const db = prefill(work, n, `http://127.0.0.1:${rx.port}/cb`);
      const base = await received(rx);
      const t0 = performance.now();
      const d = await startContestant('chargegate', work, { db, env: { ...env, QUEUE_MAX_SIZE: String(n * 2) }, ...opts });
      while ((await received(rx)) - base < n && performance.now() - t0 < 300_000) await sleep(100);
      const seconds = (performance.now() - t0) / 1000;
      const drainPeak = d.rss().peak;
      await d.stop();
      const check = new Database(db, { readonly: true });
      const delivered = check.prepare("SELECT COUNT(*) FROM charging_requests WHERE state = 'delivered'").pluck().get() as number;
      check.close();
      for (const x of ['', '-wal', '-shm', '.lock']) rmSync(db + x, { force: true });
      const row = {
        sat_rps: s.rps2xx, sat_p99: s.p99, sat_rss_peak: Math.round(satPeak),
        drain_s: Math.round(seconds * 10) / 10, drain_per_s: Math.round(n / seconds), drain_rss_peak: Math.round(drainPeak),
        delivered,
      };
      (runs.get(v.name) ?? runs.set(v.name, []).get(v.name)!).push(row);
      process.stderr.write(`rss: round ${r + 1} ${v.name}: ${JSON.stringify(row)}\n`);
    }
  }
  await rx.stop();
} finally {
  rmSync(work, { recursive: true, force: true });
}
for (const [name, rows] of runs) {
  const m = medianRow(rows);
  console.log(`${name}: ${JSON.stringify(m)}`);
}
