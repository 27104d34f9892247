// What access control costs: accepted requests/s of the executable with keys and TLS off,
// keys on, and keys + TLS on, in alternating rounds of one run (medians reported).
//
//   npm run build && node bench/access.ts [--seconds 5] [--rounds 3] [--connections 50]
//
// The service (all its threads) is pinned to CPU 0 with taskset when it exists, this
// process (autocannon and a callback receiver) to CPU 1. Loopback only; stops by itself.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { median, start } from './lib.ts';

const { values: opts } = parseArgs({
  options: { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, connections: { type: 'string', default: '50' } },
});
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'dist', 'chargegate');
const FIXTURES = join(ROOT, 'test', 'faults', 'fixtures');
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const work = mkdtempSync(join(tmpdir(), 'cg-access-'));
const pin = availableParallelism() >= 2 && (() => {
  try {
    execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const rx = await start(process.execPath, [join(ROOT, 'bench', 'receiver.ts')], {});
const env = { PATH: process.env.PATH ?? '', CHARGEGATE_CACHE_DIR: join(work, 'cache') };

async function round(name: string, keys: boolean, tls: boolean): Promise<number> {
  const db = join(work, `${name}-${Date.now()}.db`);
  execFileSync(BIN, ['acl', 'add', TOKEN, '--db', db], { env });
  const key = keys ? execFileSync(BIN, ['keys', 'add', 'bench', '--db', db], { env }).toString().trim() : null;
  const svcEnv = {
    ...env, HOST: '127.0.0.1', PORT: '0', DB_PATH: db, QUEUE_MAX_SIZE: '10000000',
    ...(tls ? { TLS_CERT_FILE: join(FIXTURES, 'selfsigned.crt'), TLS_KEY_FILE: join(FIXTURES, 'selfsigned.key') } : {}),
  };
  const svc = await start(pin ? 'taskset' : BIN, pin ? ['-c', '0', BIN, 'serve'] : ['serve'], svcEnv);
  try {
    const load = (duration: number) =>
      autocannon({
        url: `${tls ? 'https' : 'http'}://127.0.0.1:${svc.port}/api/v1/charging-session`,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ station_id: '123e4567-e89b-12d3-a456-426614174000', driver_token: TOKEN, callback_url: `http://127.0.0.1:${rx.port}/cb` }),
        connections: Number(opts.connections),
        duration,
      });
    await load(1);
    const r = await load(Number(opts.seconds));
    return Math.round(r['2xx'] / Number(opts.seconds));
  } finally {
    await svc.stop();
  }
}

const results: Record<string, number[]> = { off: [], keys: [], 'keys+tls': [] };
try {
  for (let i = 0; i < Number(opts.rounds); i++) {
    results.off!.push(await round('off', false, false));
    results.keys!.push(await round('keys', true, false));
    results['keys+tls']!.push(await round('tls', true, true));
  }
  const base = median(results.off!);
  for (const [k, v] of Object.entries(results)) {
    process.stdout.write(`${k.padEnd(9)} accepted/s median ${median(v)} (rounds ${v.join(', ')}) ratio ${(median(v) / base).toFixed(2)}\n`);
  }
  process.stdout.write(`${JSON.stringify({ pinned: pin, connections: Number(opts.connections), seconds: Number(opts.seconds), results })}\n`);
} finally {
  await rx.stop();
  rmSync(work, { recursive: true, force: true });
}
