import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { it } from 'node:test';
import { processDir, REPO_ROOT } from '../support/process.ts';

// With LOG_LEVEL=warn the "listening" log line is off, yet PORT=0 picks a port the operator
// must learn: one line on stderr says where the service listens.

it('LOG_LEVEL=warn with PORT=0 still prints the chosen port (one stderr line), and it answers there', { timeout: 60_000 }, async (t) => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('NODE_')) env[k] = v;
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'chargegate.ts'), 'serve'], {
    cwd: REPO_ROOT,
    env: { ...env, LOG_LEVEL: 'warn', PORT: '0', HOST: '127.0.0.1', WORKERS: '1', DB_PATH: join(processDir(t), 'q.db') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'close');
  t.after(() => child.kill('SIGKILL'));
  const stdout: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (s: string) => stdout.push(s));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stderr! }).once('line', resolve);
    void exited.then(() => reject(new Error('exited before printing where it listens')));
  });
  const m = /^chargegate: listening on 127\.0\.0\.1:(\d+) \(db .*q\.db\)$/.exec(line);
  assert.ok(m, line);
  const live = await fetch(`http://127.0.0.1:${m[1]}/health/live`);
  assert.equal(live.status, 200);
  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0);
  assert.equal(stdout.join(''), '', 'no info lines at warn');
});
