// node bench/idle.ts [--baseline <executable>] [--start-only] [executable]: the footprint and
// idle cost of the executable, measured from outside as an operator would (npm run bench:idle;
// npm run bench:start for the first two parts only). Every process runs with `env -i` (PATH
// only) from a new empty folder:
//   - floor: the pinned `node -e 0`, the least any Node process costs on this box;
//   - `--version`: median wall time of 7 runs and the largest max RSS (GNU time, when installed);
//   - start: median of 7 starts, spawn -> the "listening" log line, default settings, and the
//     CPU time the process had used by then;
//   - idle (default settings, then WORKERS=1): RSS (total, anonymous, file-backed) 5 s and 60 s
//     after listening (worker threads end after 30 s without work: src/dispatch/pool.ts), then
//     CPU % of a core and disk writes over 60 s (/proc), main-thread epoll returns per second
//     over 20 s (strace, when installed).
// With --baseline the same runs alternate with another executable (e.g. one built from main)
// and each figure is given as new / baseline: the box is shared and noisy, ratios hold better.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, name === '--start-only' ? 1 : 2)[1] ?? '';
};
const baselineArg = flag('--baseline');
const startOnly = flag('--start-only') !== undefined;
const BIN = args[0] ? resolve(args[0]) : join(fileURLToPath(new URL('..', import.meta.url)), 'dist', 'chargegate');
const BASE = baselineArg ? resolve(baselineArg) : undefined;
const NODE = join(dirname(createRequire(import.meta.url).resolve('node/package.json')), 'bin', 'node');
const ENV = { PATH: '/usr/bin:/bin' };
const RUNS = 7;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const hasCommand = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const gnuTime = hasCommand('/usr/bin/time') ? '/usr/bin/time' : null;
const say = (s: string) => process.stdout.write(`${s}\n`);
const ratio = (a: number, b: number | undefined) =>
  b === undefined ? '' : ` (${(a / b).toFixed(2)} x baseline ${b.toFixed(0)})`;

/** Wall ms and max RSS (KiB, null without GNU time) of one short run. */
function once(cmd: string, argv: string[]): { ms: number; maxKiB: number | null } {
  const dir = mkdtempSync(join(tmpdir(), 'cg-bench-'));
  try {
    const t0 = performance.now();
    const r = gnuTime
      ? spawnSync(gnuTime, ['-f', '%M', cmd, ...argv], { cwd: dir, env: ENV, encoding: 'utf8' })
      : spawnSync(cmd, argv, { cwd: dir, env: ENV, encoding: 'utf8' });
    const ms = performance.now() - t0;
    if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
    const kib = gnuTime ? Number(r.stderr.trim().split('\n').at(-1)) : null;
    return { ms, maxKiB: kib };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function startOnce(bin: string, port: number, env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'cg-idle-'));
  const t0 = performance.now();
  const stdio: ['ignore', 'pipe', 'inherit'] = ['ignore', 'pipe', 'inherit'];
  const p = spawn(bin, ['serve', '--port', String(port)], { cwd: dir, env: { ...ENV, ...env }, stdio });
  // Also the CPU time the process had used by then (all its threads): on a shared, busy
  // box it varies far less than the wall time.
  let cpuMs = NaN;
  const listening = new Promise<number>((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (c: Buffer) => {
      if (!Number.isNaN(cpuMs)) return;
      buf += c;
      if (!buf.includes('"msg":"listening"')) return;
      cpuMs = cpuTicks(p.pid!) * 10;
      resolve(performance.now() - t0);
    });
    p.on('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  return { p, dir, listening, cpuMs: () => cpuMs };
}

/** utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux). */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function stop(s: ReturnType<typeof startOnce>) {
  const done = new Promise((r) => s.p.on('exit', r));
  s.p.kill('SIGTERM');
  await done;
  rmSync(s.dir, { recursive: true, force: true });
}

const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

/** Short runs, alternating with the baseline when there is one. */
function short(label: string, cmd: (bin: string) => [string, string[]], compare = true) {
  const bins = BASE && compare ? [BIN, BASE] : [BIN];
  const out = bins.map(() => ({ ms: [] as number[], kib: [] as number[] }));
  for (let i = 0; i < RUNS; i++) {
    bins.forEach((b, j) => {
      const r = once(...cmd(b));
      out[j]!.ms.push(r.ms);
      if (r.maxKiB !== null) out[j]!.kib.push(r.maxKiB);
    });
  }
  const [n, b] = out;
  const base = b?.kib.length ? ` (baseline ${mib(Math.max(...b.kib))})` : '';
  const rss = n!.kib.length ? `, max RSS ${mib(Math.max(...n!.kib))}${base}` : '';
  const all = n!.ms.map((x) => x.toFixed(0)).join(' ');
  say(`${label}: median ${median(n!.ms).toFixed(0)} ms${ratio(median(n!.ms), b && median(b.ms))}${rss}; all ${all}`);
}

say(`executable ${BIN}${BASE ? `, baseline ${BASE}` : ''}; ${RUNS} runs each, env -i, empty folders`);
short('node -e 0 (floor)', () => [NODE, ['-e', '0']], false);
short('chargegate --version', (b) => [b, ['--version']]);

{
  const bins = BASE ? [BIN, BASE] : [BIN];
  const starts = bins.map(() => [] as number[]);
  const cpu = bins.map(() => [] as number[]);
  for (let i = 0; i < RUNS; i++) {
    for (const [j, b] of bins.entries()) {
      const s = startOnce(b, 18300 + i * 2 + j);
      starts[j]!.push(await s.listening);
      cpu[j]!.push(s.cpuMs());
      await stop(s);
    }
  }
  const [n, b] = starts;
  const [nc, bc] = cpu;
  const all = n!.map((x) => x.toFixed(0)).join(' ');
  const vs = ratio(median(n!), b && median(b));
  say(`start to listening (empty folder, default settings): median ${median(n!).toFixed(0)} ms${vs}; all ${all}`);
  const cpuVs = ratio(median(nc!), bc && median(bc));
  say(`  CPU used by then (user + system, 10 ms ticks): median ${median(nc!).toFixed(0)} ms${cpuVs}`);
}
if (startOnly) process.exit(0);

type Status = Record<string, string>;
const status = (pid: number): Status =>
  Object.fromEntries(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').map((l) => l.split(/:\s+/)));
const rssLine = (st: Status) => `${st.VmRSS} (anon ${st.RssAnon}, file ${st.RssFile}), threads ${st.Threads}`;

/** RSS 5 s and 60 s after listening; with `full`, then CPU, disk writes and wake-ups. */
async function idle(label: string, env: Record<string, string>, full: boolean) {
  const s = startOnce(BIN, 18320, env);
  await s.listening;
  const pid = s.p.pid!;
  await sleep(5_000);
  say(`${label}: RSS 5 s after listening: ${rssLine(status(pid))}`);
  await sleep(55_000);
  say(`${label}: RSS 60 s after listening: ${rssLine(status(pid))}`);
  if (full) {
    const writes = () => Number(/write_bytes: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
    const c0 = cpuTicks(pid);
    const w0 = writes();
    const t0 = performance.now();
    await sleep(60_000);
    const secs = (performance.now() - t0) / 1000;
    const cpu = (((cpuTicks(pid) - c0) / 100 / secs) * 100).toFixed(2);
    say(`${label}: idle CPU ${cpu} % of a core; disk writes ${writes() - w0} bytes in ${secs.toFixed(0)} s`);
    // After the CPU window: tracing costs CPU itself.
    if (hasCommand('strace')) {
      const r = spawnSync('timeout', ['-s', 'INT', '20', 'strace', '-c', '-e', 'trace=epoll_pwait,epoll_wait', '-p', String(pid)], { encoding: 'utf8' });
      // strace -c columns: % time, seconds, usecs/call, calls, [errors,] syscall.
      const line = r.stderr.split('\n').find((l) => /\sepoll_p?wait$/.test(l));
      const calls = line ? Number(line.trim().split(/\s+/)[3]) : NaN;
      say(`${label}: main thread epoll returns ${(calls / 20).toFixed(1)}/s (strace, 20 s)`);
    }
  }
  await stop(s);
}

await idle('default settings', {}, true);
await idle('WORKERS=1', { WORKERS: '1' }, false);
