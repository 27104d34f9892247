import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startReceiver } from './receiver.ts';

// The single executable as a user runs it: built by build.mjs, started with a bare
// environment, its JSON log lines read from stdout.

const root = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Runs build.mjs and returns the path of dist/chargegate. build.mjs compares the hash of
 * every input with the last build's and only bundles when nothing changed (~1 s).
 */
export function buildBinary(timeoutMs = 240_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [join(root, 'build.mjs')], { cwd: root, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`build.mjs failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(join(root, 'dist', 'chargegate'));
    });
  });
}

/** What `env -i PATH=/usr/bin:/bin VAR=… chargegate` passes: nothing else is inherited. */
export function minimalEnv(vars: Record<string, string>): Record<string, string> {
  return { PATH: '/usr/bin:/bin', ...vars };
}

/** The executable's settings for a test folder: its own database and unpack cache, loopback, port 0. */
export function folderEnv(dir: string): Record<string, string> {
  return minimalEnv({
    DB_PATH: join(dir, 'data', 'chargegate.db'),
    PORT: '0',
    HOST: '127.0.0.1',
    CHARGEGATE_CACHE_DIR: join(dir, 'cache'),
    WORKERS: '2',
    LOG_LEVEL: 'info',
  });
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a one-shot command to its end; killed after timeoutMs. */
export function runBinary(bin: string, args: string[], opts: { cwd: string; env: Record<string, string>; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 20_000, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c));
    p.stderr.on('data', (c: Buffer) => (stderr += c));
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/**
 * Starts `chargegate serve` and resolves once it logs "listening", with the port it
 * logged. The caller stops it (`stop`) or, on every path, `kill`s it.
 */
export function startServe(bin: string, opts: { cwd: string; env: Record<string, string>; args?: string[]; timeoutMs?: number }) {
  const p = spawn(bin, ['serve', ...(opts.args ?? [])], { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = '';
  let pending = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    p.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`no "listening" line within ${opts.timeoutMs ?? 20_000} ms\n${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    p.stdout.on('data', (c: Buffer) => {
      pending += c;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let json: Record<string, unknown>;
        try {
          json = JSON.parse(line);
        } catch {
          continue;
        }
        lines.push(json);
        if (json.msg === 'listening') {
          clearTimeout(timer);
          resolve(json.port as number);
        }
      }
    });
    p.stderr.on('data', (c: Buffer) => (stderr += c));
    p.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code ?? signal}) before listening\n${stderr}`));
    });
  });
  return {
    listening,
    lines,
    stderr: () => stderr,
    /** Sends the signal and resolves with the exit code; SIGKILL after timeoutMs. */
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) {
      if (p.exitCode !== null || p.signalCode !== null) return exited;
      p.kill(signal);
      const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
    kill(): void {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    },
  };
}

/** The SPEC example's station and token: what the binary tests allow with `acl add`. */
export const SAMPLE = { station: '123e4567-e89b-12d3-a456-426614174000', token: 'ABCD-efgh1234567890_~valid.token' } as const;

/**
 * Starts `bin serve` (stopped with the test), POSTs the SPEC body to it and waits for the
 * callback at a receiver of its own; the caller then checks the call and stops the server.
 */
export async function serveAndAwaitCallback(
  t: { after: (fn: () => unknown) => void },
  bin: string,
  opts: { cwd: string; env: Record<string, string>; timeoutMs?: number },
) {
  const receiver = await startReceiver();
  t.after(() => receiver.close());
  const server = startServe(bin, { cwd: opts.cwd, env: opts.env, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  t.after(() => server.kill());
  const port = await server.listening;
  return { server, port, ...(await postAndAwaitCallback(port, receiver, opts.timeoutMs ?? 15_000)) };
}

/**
 * POSTs the SPEC body to a running chargegate (executable, package or container), checks
 * the 202, and waits for its callback at the receiver; returns the request id and the call.
 */
export async function postAndAwaitCallback(
  port: number,
  receiver: { url: (path?: string) => string; callsFor: (id: string) => Array<{ path: string; json: Record<string, unknown> | null }> },
  timeoutMs = 15_000,
) {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ station_id: SAMPLE.station, driver_token: SAMPLE.token, callback_url: receiver.url('/cb') }),
  });
  if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
  const { request_id } = (await res.json()) as { request_id: string };
  const deadline = Date.now() + timeoutMs;
  while (receiver.callsFor(request_id).length === 0) {
    if (Date.now() > deadline) throw new Error(`no callback for ${request_id} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { request_id, call: receiver.callsFor(request_id)[0]! };
}
