// node bench/idle.ts [executable]: the footprint and idle cost of the executable, measured
// from outside as an operator would. Start: median of 7 starts from an empty folder with
// `env -i` (spawn -> the "listening" log line), default settings. Idle: 60 s after start,
// with no traffic: RSS, CPU % of a core and disk writes over 60 s (/proc), main-thread
// epoll returns per second over 20 s (strace, when installed).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = process.argv[2] ? resolve(process.argv[2]) : join(fileURLToPath(new URL('..', import.meta.url)), 'dist', 'chargegate');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function startOnce(port: number) {
  const dir = mkdtempSync(join(tmpdir(), 'cg-idle-'));
  const t0 = performance.now();
  const p = spawn(BIN, ['serve', '--port', String(port)], { cwd: dir, env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const listening = new Promise<number>((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (c: Buffer) => {
      buf += c;
      if (buf.includes('"msg":"listening"')) resolve(performance.now() - t0);
    });
    p.on('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  return { p, dir, listening };
}

async function stop(s: ReturnType<typeof startOnce>) {
  const done = new Promise((r) => s.p.on('exit', r));
  s.p.kill('SIGTERM');
  await done;
  rmSync(s.dir, { recursive: true, force: true });
}

const starts: number[] = [];
for (let i = 0; i < 7; i++) {
  const s = startOnce(18300 + i);
  starts.push(await s.listening);
  await stop(s);
}
process.stdout.write(`start to listening (ms, 7 starts, empty folder): median ${median(starts).toFixed(0)}, all ${starts.map((x) => x.toFixed(0)).join(' ')}\n`);

const s = startOnce(18310);
await s.listening;
const pid = s.p.pid!;
const status = () => Object.fromEntries(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').map((l) => l.split(/:\s+/)) as [string, string][]);
const cpuTicks = () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ').slice(11, 13).reduce((a, b) => a + Number(b), 0);
const writes = () => Number(/write_bytes: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
await sleep(60_000);
const st = status();
process.stdout.write(`idle RSS after 60 s: ${st.VmRSS} (anon ${st.RssAnon}, file ${st.RssFile}), threads ${st.Threads}\n`);
const c0 = cpuTicks();
const w0 = writes();
const t0 = performance.now();
await sleep(60_000);
const secs = (performance.now() - t0) / 1000;
process.stdout.write(`idle CPU: ${(((cpuTicks() - c0) / 100 / secs) * 100).toFixed(2)} % of a core; disk writes: ${writes() - w0} bytes in ${secs.toFixed(0)} s\n`);
// After the CPU window: tracing costs CPU itself.
if (spawnSync('sh', ['-c', 'command -v strace'], { stdio: 'ignore' }).status === 0) {
  const r = spawnSync('timeout', ['-s', 'INT', '20', 'strace', '-c', '-e', 'trace=epoll_pwait,epoll_wait', '-p', String(pid)], { encoding: 'utf8' });
  // strace -c columns: % time, seconds, usecs/call, calls, [errors,] syscall.
  const line = r.stderr.split('\n').find((l) => /\sepoll_p?wait$/.test(l));
  const calls = line ? Number(line.trim().split(/\s+/)[3]) : NaN;
  process.stdout.write(`main thread epoll returns: ${(calls / 20).toFixed(1)}/s (strace, 20 s)\n`);
}
await stop(s);
