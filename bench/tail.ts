// Where the tail comes from: open-loop load at a fixed rate against the executable under
// variants of its settings, rounds alternating the variants (the shared box's noise then
// hits each alike), medians of p50/p99/max per variant plus each thread's CPU time.
//
//   npm run build && node bench/tail.ts [--rate 500] [--seconds 10] [--rounds 5] \
//     [--variant 'name:{"LOG_LEVEL":"warn"}' ...] [--variant 'name:{"@workerNice":"10"}']
//
// A variant is a name and a JSON object of settings; `@workerNice` is not a setting but
// renices the executable's worker threads from outside after start, `@bin` runs another
// build of the executable. Pinning and priority as bench/run.ts (bench/lib.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ROOT, startContestant } from './contestants.ts';
import { medianRow, output, parseVariant, pinSelf, pinned, threadTicks } from './lib.ts';

const { values: o } = parseArgs({
  options: {
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '5' },
    variant: { type: 'string', multiple: true, default: ['default:{}'] },
  },
});
const variants = o.variant!.map(parseVariant);

pinSelf();
const work = mkdtempSync(join(tmpdir(), 'cg-tail-'));
const runs = new Map<string, Array<Record<string, number>>>();
try {
  for (let r = 0; r < Number(o.rounds); r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(k + r) % variants.length]!;
      const { '@workerNice': nice, '@bin': bin, ...env } = v.env;
      const c = await startContestant('chargegate', work, { env, ...(bin ? { bin } : {}) });
      if (nice) {
        for (const tid of readdirSync(`/proc/${c.pids[0]}/task`)) {
          const comm = readFileSync(`/proc/${c.pids[0]}/task/${tid}/comm`, 'utf8').trim();
          if (comm === 'WorkerThread') execFileSync('renice', ['-n', nice, '-p', tid]);
        }
      }
      const before = threadTicks(c.pids[0]!);
      const [cmd, args] = pinned('load', process.execPath, [join(ROOT, 'bench', 'openloop.ts'),
        JSON.stringify({ port: c.port, rate: Number(o.rate), seconds: Number(o.seconds), warmup: Number(o.warmup), callbacks: true })]);
      const res = JSON.parse(await output(cmd, args));
      const after = threadTicks(c.pids[0]!);
      // Time the main thread spent inside group commits (chargegate_db_commit_seconds_sum).
      const metrics = await (await fetch(`http://127.0.0.1:${c.port}/metrics`)).text();
      const commitSum = Number(/^chargegate_db_commit_seconds_sum (\S+)/m.exec(metrics)?.[1] ?? NaN);
      await c.stop();
      const cpu = (name: string) => ((after.get(name) ?? 0) - (before.get(name) ?? 0)) * 10; // ms at 100 Hz
      const row = {
        accept_p50: res.accept.p50, accept_p99: res.accept.p99, accept_max: res.accept.max,
        callback_p50: res.callback.p50, callback_p99: res.callback.p99, callback_max: res.callback.max,
        send_lag_max: res.send_lag_max_ms, commit_blocked_ms: Math.round(commitSum * 1000),
        cpu_main_ms: cpu('MainThread'), cpu_workers_ms: cpu('WorkerThread'), cpu_gc_ms: cpu('V8Worker'),
        cpu_libuv_ms: cpu('libuv-worker'),
      };
      (runs.get(v.name) ?? runs.set(v.name, []).get(v.name)!).push(row);
      process.stderr.write(`tail: round ${r + 1} ${v.name}: ${JSON.stringify(row)}\n`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
for (const [name, rows] of runs) {
  const m = medianRow(rows);
  console.log(`${name}: ${JSON.stringify(m)}`);
}
