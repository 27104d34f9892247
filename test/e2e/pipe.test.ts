import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { it } from 'node:test';
import { REPO_ROOT } from '../support/process.ts';

// `chargegate … | head`: the reader closes the pipe early. The command ends quietly (exit 0),
// not with an unhandled EPIPE and a stack trace.

it('a closed stdout ends a command quietly', { timeout: 30_000 }, async () => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('NODE_')) env[k] = v;
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'chargegate.ts'), 'serve', '--help'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  // Closed before the child has started up: its first write finds no reader.
  child.stdout!.destroy();
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const [code] = await once(child, 'close');
  assert.equal(stderr, '');
  assert.equal(code, 0);
});
