// What an accept costs, A/B: bare Hapi + joi and builds or settings of the executable under
// saturation (wrk, or autocannon in its own process), rounds alternating, each contestant
// fresh per round; accepted/s, latency, callbacks/s arriving meanwhile and each thread's
// CPU time per accepted request. Pinning and priority as bench/run.ts (bench/lib.ts).
//
//   npm run build && node bench/accept.ts [--rounds 5] [--seconds 8] [--connections 100] \
//     [--bare] --variant 'main:{}' --variant 'other:{"@bin":"/tmp/cg-b","LOG_LEVEL":"warn"}'
//
// A variant is a name and a JSON object of settings (environment of the executable);
// `@bin` runs another build. docs/performance.md ("What an accept is made of") uses it to
// split the accept ratio into the durable accept and the work done for each request.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, STATION, TOKEN, startContestant, type Running } from './contestants.ts';
import { median, medianRow, parseVariant, pinSelf, pinned, start, threadTicks } from './lib.ts';
import { saturate } from './saturate.ts';

const { values: o } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '100' },
    bare: { type: 'boolean', default: false },
    variant: { type: 'string', multiple: true, default: [] },
  },
});
const variants: Array<{ name: string; env: Record<string, string> | null }> = o.variant!.map(parseVariant);
if (o.bare) variants.unshift({ name: 'bare', env: null });
if (variants.length === 0) throw new Error('nothing to measure: give --bare and/or --variant name:{settings}');

pinSelf();
const work = mkdtempSync(join(tmpdir(), 'cg-accept-'));
const [rcmd, rargs] = pinned('load', process.execPath, [join(ROOT, 'bench', 'receiver.ts')]);
const rx = await start(rcmd, rargs, {});
const received = async () => ((await (await fetch(`http://127.0.0.1:${rx.port}/stats`)).json()) as { received: number }).received;
const body = JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: `http://127.0.0.1:${rx.port}/cb` });
const conns = Number(o.connections);
const runs = new Map<string, Array<Record<string, number>>>();
try {
  for (let r = 0; r < Number(o.rounds); r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(k + r) % variants.length]!;
      let c: Running;
      if (v.env === null) c = await startContestant('bare', work);
      else {
        const { '@bin': bin, ...env } = v.env;
        // No bound: this measures accepting, as the bench's saturation phase does.
        c = await startContestant('chargegate', work, { env: { QUEUE_MAX_SIZE: '10000000', ...env }, ...(bin ? { bin } : {}) });
      }
      await saturate(work, c.port, conns, Number(o.warmup), body);
      const before = threadTicks(c.pids[0]!);
      const cb0 = await received();
      const s = await saturate(work, c.port, conns, Number(o.seconds), body);
      const cbs = (await received()) - cb0;
      const after = threadTicks(c.pids[0]!);
      await c.stop();
      const n = s.rps2xx * s.seconds;
      // µs of each thread's CPU per accepted request (ticks are 10 ms).
      const us = (name: string) => Math.round((((after.get(name) ?? 0) - (before.get(name) ?? 0)) * 10_000) / n);
      let all = 0;
      for (const [name, t] of after) all += t - (before.get(name) ?? 0);
      const row = {
        rps: s.rps2xx, p50: s.p50, p99: s.p99, non2xx: s.non2xx, callbacks_per_s: Math.round(cbs / s.seconds),
        us_main: us('MainThread'), us_worker: us('WorkerThread'), us_gc: us('V8Worker'), us_libuv: us('libuv-worker'),
        us_all: Math.round((all * 10_000) / n),
      };
      (runs.get(v.name) ?? runs.set(v.name, []).get(v.name)!).push(row);
      process.stderr.write(`accept: round ${r + 1} ${v.name}: ${JSON.stringify(row)}\n`);
    }
  }
} finally {
  await rx.stop();
  rmSync(work, { recursive: true, force: true });
}
const base = runs.get(variants[0]!.name)!;
for (const [name, rows] of runs) {
  const m = medianRow(rows);
  // The ratio per round to the first contestant of that round's list, then the median.
  const ratio = median(rows.map((x, i) => x.rps! / base[i]!.rps!));
  console.log(`${name}: ${JSON.stringify({ ...m, rps_vs_first: Number(ratio.toFixed(2)) })}`);
}
