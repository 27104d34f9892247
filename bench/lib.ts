import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';

// Child processes for the bench: each contestant, the callback receiver and the load
// generator run in their own process, pinned to a core when taskset is there.

export interface Child {
  child: ChildProcess;
  port: number;
  readyMs: number;
  stop(): Promise<void>;
}

/** True when `cmd` runs (found on PATH and answers the given arguments). */
export function has(cmd: string, args: string[] = ['--version']): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Where things run: the server's whole process tree on one core, the load generator and the
 * receivers on the other. null when taskset is missing or the box has one core (unpinned).
 */
export const cores: { server: string; load: string } | null =
  has('taskset', ['-V']) && availableParallelism() >= 2
    ? { server: process.env.BENCH_SERVER_CPU ?? '0', load: process.env.BENCH_LOAD_CPU ?? '1' }
    : null;

/**
 * The priority every contestant and the load run at (BENCH_NICE, default -10 when allowed):
 * on a box shared with other jobs, a raised priority keeps them from preempting the measured
 * processes, alike for every contestant. 0 (or not root) leaves the priority alone.
 */
export const niceness: number = (() => {
  const n = Number(process.env.BENCH_NICE ?? -10);
  return n === 0 || !has('nice', ['--version']) || (n < 0 && process.getuid?.() !== 0) ? 0 : n;
})();

/** cmd and args, prefixed with `nice -n N taskset -c <cpu>` when on (both exec: same pid). */
export function pinned(where: 'server' | 'load', cmd: string, args: string[]): [string, string[]] {
  const pin: string[] = cores ? ['taskset', '-c', cores[where]] : [];
  const pri: string[] = niceness ? ['nice', '-n', String(niceness)] : [];
  const all = [...pri, ...pin, cmd, ...args];
  return [all[0]!, all.slice(1)];
}

/** Pins every thread of this process to the load core (the bench itself is load-side work). */
export function pinSelf(): void {
  if (cores) execFileSync('taskset', ['-a', '-p', '-c', cores.load, String(process.pid)], { stdio: 'ignore' });
}

/**
 * The box's own latency floor: a 1 ms timer on each core for `ms`, at the bench's priority;
 * how late it fires (p99, max) is what any server's tail includes here before doing any work.
 */
export async function timerFloor(ms: number): Promise<Record<string, { p99: number; max: number }>> {
  const code = `const xs=[];let last=performance.now();const end=last+${ms};const t=setInterval(()=>{const n=performance.now();` +
    `xs.push(n-last-1);last=n;if(n>end){clearInterval(t);xs.sort((a,b)=>a-b);` +
    `console.log(JSON.stringify({p99:+xs[Math.floor(xs.length*.99)].toFixed(2),max:+xs.at(-1).toFixed(2)}))}},1);`;
  const out: Record<string, { p99: number; max: number }> = {};
  const runs = (['server', 'load'] as const).map(async (w) => {
    const [cmd, args] = pinned(w, process.execPath, ['-e', code]);
    out[w] = JSON.parse(await output(cmd, args));
  });
  await Promise.all(runs);
  return out;
}

/**
 * Starts a child that prints `{"msg":"listening","port":N}` (or `"listening"` in a JSON log
 * line) on stdout, or chargegate's `listening on host:port` on stderr (log levels above info).
 */
export function start(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<Child> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.pipe(process.stderr, { end: false });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} did not start within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('exit', (code) => reject(new Error(`${cmd} ${args.join(' ')} exited with ${code} before listening`)));
    const out = createInterface({ input: child.stdout! });
    const err = createInterface({ input: child.stderr! });
    const ready = (port: number) => {
      clearTimeout(timer);
      const readyMs = performance.now() - t0;
      // Keep draining stdout (the service logs a line per request).
      out.removeAllListeners('line');
      err.removeAllListeners('line');
      out.on('line', () => undefined);
      resolve({ child, port, readyMs, stop: () => stopChild(child) });
    };
    out.on('line', (line) => {
      if (line.includes('"listening"')) ready(JSON.parse(line).port as number);
    });
    err.on('line', (line) => {
      const m = /listening on [^ ]*:(\d+)/.exec(line);
      if (m) ready(Number(m[1]));
    });
  });
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r();
    child.removeAllListeners('exit');
    child.once('exit', () => r());
    child.kill(signal);
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  });
}

/** Runs a child to its end and returns its stdout (stderr passes through). */
export function output(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${code}: ${out.slice(-500)}`))));
  });
}

/** A TCP port free on loopback right now (for children that cannot be told port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resident set size of one process, current and peak (VmHWM), in MiB, threads included. */
export function rss(pid: number): { now: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return { now: 0, peak: 0 };
  }
}

/** RSS of a process tree given as its pids: the sums of current and of peak (an upper bound when > 1 pid). */
export function treeRss(pids: number[]): { now: number; peak: number } {
  const all = pids.map(rss);
  return { now: all.reduce((a, r) => a + r.now, 0), peak: all.reduce((a, r) => a + r.peak, 0) };
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU ticks (utime + stime) per thread name, summed over threads of the same name. */
export function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      out.set(comm, (out.get(comm) ?? 0) + Number(f[11]) + Number(f[12]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** A `--variant name:{json}` of the A/B tools: its name and settings (environment, `@bin`, …). */
export function parseVariant(v: string): { name: string; env: Record<string, string> } {
  const i = v.indexOf(':');
  return { name: v.slice(0, i), env: JSON.parse(v.slice(i + 1)) as Record<string, string> };
}

/** Each figure's median over the rounds of one variant. */
export function medianRow(rows: Array<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.keys(rows[0]!).map((k) => [k, median(rows.map((x) => x[k]!))]));
}
