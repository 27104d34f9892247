import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CONFIG_VARIABLES } from '../../src/config.ts';

// The service as a user runs it: a separate process started from bin/, configured by
// environment variables, talking JSON lines on stdout. process.execPath is the Node that
// runs the tests (the project's pinned Node 24), which runs the .ts sources natively.

type TestContext = { after: (fn: () => unknown) => void };

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ENTRY = join(REPO_ROOT, 'bin', 'chargegate.ts');

// Children left behind by a test that crashed before its t.after ran (and services whose
// parent is not this process, see StartOptions.unreaped).
const live = new Set<ChildProcess>();
const livePids = new Set<number>();
process.once('exit', () => {
  for (const pid of livePids) signalPid(pid, 'SIGKILL');
  for (const c of live) c.kill('SIGKILL');
});

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {}
}

interface Owned {
  children: Array<{ child: ChildProcess; stopped: Promise<Exit> }>;
  /** Services that are not our children: SIGKILLed before the children are. */
  pids: number[];
  dirs: string[];
}
const owned = new WeakMap<TestContext, Owned>();

/**
 * What a test started, cleaned up by one t.after hook: every child is SIGKILLed (if still
 * running) and reaped first, then the temp folders go, so no service outlives its test
 * or writes into a removed folder.
 */
function ownedBy(t: TestContext): Owned {
  let o = owned.get(t);
  if (o) return o;
  const fresh: Owned = { children: [], pids: [], dirs: [] };
  owned.set(t, fresh);
  t.after(async () => {
    for (const pid of fresh.pids) {
      signalPid(pid, 'SIGKILL');
      livePids.delete(pid);
    }
    await Promise.all(fresh.children.map(({ child, stopped }) => killAndWait(child, stopped)));
    for (const d of fresh.dirs) rmSync(d, { recursive: true, force: true });
  });
  return fresh;
}

/** A temp folder removed when the test ends, after the processes it started are gone. */
export function processDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cg-e2e-'));
  ownedBy(t).dirs.push(dir);
  return dir;
}

/** The parent's environment minus what would change how the child runs or is configured. */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  // The test runner's and tsx's settings belong to this process, not the service.
  for (const k of ['NODE_OPTIONS', 'NODE_TEST_CONTEXT', 'NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE']) delete env[k];
  // Only what the test passes configures the service.
  for (const v of CONFIG_VARIABLES) delete env[v.env];
  return env;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  child: ChildProcess;
  /** The service's pid (with `unreaped`, not the child's: that is the non-reaping parent). */
  pid: number;
  port: number;
  base: string;
  dbPath: string;
  /** stdout lines parsed as JSON (non-JSON lines are kept in `raw` only). */
  lines: Array<Record<string, unknown>>;
  /** Every stdout line as written. */
  raw: string[];
  /** stderr as written. */
  stderr: () => string;
  kill: (signal?: NodeJS.Signals) => void;
  /** Settles when the process has exited and its output is fully read. */
  stopped: Promise<Exit>;
}

export interface StartOptions {
  /** Reuse this database file (a restart); default: a fresh one in a temp folder. */
  dbPath?: string;
  env?: Record<string, string>;
  /** How long to wait for the "listening" line. */
  startTimeoutMs?: number;
  /**
   * Run the service as the child of a process that never reaps it, as when its supervisor
   * has not collected it yet: after a SIGKILL its pid stays taken (a zombie) until the test
   * ends. `child` and `stopped` are then that parent's; `kill` still signals the service.
   */
  unreaped?: boolean;
  /** Run under this command (e.g. `['timeout', '600']`), in its own process group. */
  under?: string[];
  /** Told the service's pid as soon as it is known, before it is listening. */
  onSpawn?: (pid: number) => void;
}

function watchExit(child: ChildProcess): Promise<Exit> {
  return new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
}

async function killAndWait(child: ChildProcess, stopped: Promise<Exit>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await stopped;
}

/**
 * Starts `chargegate serve` on 127.0.0.1, port 0, and resolves once it logged "listening"
 * (the port is read from that line). The child is SIGKILLed when the test ends, if it is
 * still running.
 */
export async function startService(t: TestContext, opts: StartOptions = {}): Promise<ServiceProcess> {
  const dbPath = opts.dbPath ?? join(processDir(t), 'cg.db');
  const env = {
    ...baseEnv(),
    HOST: '127.0.0.1',
    PORT: '0',
    DB_PATH: dbPath,
    WORKERS: '2',
    LOG_LEVEL: 'info',
    CALLBACK_RETRY_BASE_MS: '10',
    ...opts.env,
  };
  const child = opts.unreaped
    ? // `exec sleep` keeps the service's parent alive and never calling wait(); the pid goes out on fd 3.
      spawn('sh', ['-c', '"$0" "$1" serve & echo $! >&3; exec sleep 3600', process.execPath, ENTRY], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] })
    : opts.under
      ? spawn(opts.under[0]!, [...opts.under.slice(1), process.execPath, ENTRY, 'serve'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
      : spawn(process.execPath, [ENTRY, 'serve'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const stopped = watchExit(child);
  ownedBy(t).children.push({ child, stopped });
  const pid = opts.unreaped
    ? await new Promise<number>((resolve, reject) => {
        let text = '';
        (child.stdio[3] as NodeJS.ReadableStream).on('data', (c: Buffer) => {
          text += c;
          if (text.includes('\n')) resolve(Number(text.trim()));
        });
        child.once('error', reject);
      })
    : child.pid!;
  opts.onSpawn?.(pid);
  if (opts.unreaped) {
    livePids.add(pid);
    ownedBy(t).pids.push(pid);
  }

  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    err += s;
  });

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`service did not log "listening" within ${opts.startTimeoutMs ?? 15_000} ms\nstdout:\n${raw.join('\n')}\nstderr:\n${err}`));
    }, opts.startTimeoutMs ?? 15_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      raw.push(line);
      let json: Record<string, unknown> | null = null;
      try {
        json = JSON.parse(line);
      } catch {}
      if (json === null || typeof json !== 'object') return;
      lines.push(json);
      if (json.msg === 'listening' && typeof json.port === 'number') {
        clearTimeout(timer);
        resolve(json.port);
      }
    });
    void stopped.then((exit) => {
      clearTimeout(timer);
      reject(new Error(`service exited before listening (code ${exit.code}, signal ${exit.signal})\nstdout:\n${raw.join('\n')}\nstderr:\n${err}`));
    });
  });

  return {
    child,
    pid,
    port,
    base: `http://127.0.0.1:${port}`,
    dbPath,
    lines,
    raw,
    stderr: () => err,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      if (opts.unreaped) signalPid(pid, signal);
      else if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    stopped,
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs one CLI command (`chargegate <args>`) to completion; SIGKILLed after timeoutMs. */
export async function runCli(t: TestContext, args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [ENTRY, ...args], { cwd: REPO_ROOT, env: { ...baseEnv(), ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const stopped = watchExit(child);
  ownedBy(t).children.push({ child, stopped });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
  const { code, signal } = await stopped;
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}

/** Runs a CLI command that must succeed; the error carries its output. */
export async function cli(t: TestContext, args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const r = await runCli(t, args, opts);
  if (r.code !== 0) throw new Error(`chargegate ${args.join(' ')} exited ${r.code ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Resolves with the exit, or rejects if the process is still running after timeoutMs. */
export function exitWithin(svc: Pick<ServiceProcess, 'stopped'>, timeoutMs: number): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    svc.stopped,
    new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`process did not exit within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}
