import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pkg from '../../package.json' with { type: 'json' };
import { buildBinary, folderEnv, runBinary, startServe, postAndAwaitCallback } from '../support/binary.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// dist/chargegate-linux-arm64, cross-built by build.mjs, run under qemu-user as it would
// run on an arm64 gateway: --version, serve, a POST, its callback, requests show, SIGTERM.

const STATION = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const QEMU = 'qemu-aarch64-static';

function qemuMissing(): string | undefined {
  try {
    execFileSync('sh', ['-c', `command -v ${QEMU}`], { stdio: 'ignore' });
  } catch {
    return `${QEMU} not installed (Debian: qemu-user-static, and libc6:arm64 libstdc++6:arm64 after dpkg --add-architecture arm64)`;
  }
  try {
    execFileSync('sh', ['-c', 'command -v aarch64-linux-gnu-strip'], { stdio: 'ignore' });
  } catch {
    return 'aarch64-linux-gnu-strip not installed, build.mjs skips the arm64 target (Debian: binutils-aarch64-linux-gnu)';
  }
  if (!existsSync('/lib/ld-linux-aarch64.so.1')) return 'arm64 libc missing (dpkg --add-architecture arm64; apt-get install libc6:arm64 libstdc++6:arm64)';
  return undefined;
}

const skip = qemuMissing();

describe('the linux-arm64 executable under qemu', { timeout: 600_000, skip }, () => {
  let dir: string;
  let bin: string;
  let built: string;
  let env: Record<string, string>;

  before(async () => {
    built = join(await buildBinary(), '..', 'chargegate-linux-arm64');
    assert.ok(existsSync(built), `${built} was not built`);
    dir = mkdtempSync(join(tmpdir(), 'cg-arm64-'));
    // A wrapper that execs qemu: signals sent to it reach qemu, which passes them on.
    bin = join(dir, 'chargegate');
    writeFileSync(bin, `#!/bin/sh\nexec ${QEMU} ${built} "$@"\n`);
    chmodSync(bin, 0o755);
    env = folderEnv(dir);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('it is an aarch64 ELF and prints its version', async () => {
    const r = await runBinary(bin, ['--version'], { cwd: dir, env, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^chargegate ${pkg.version.replaceAll('.', '\\.')} \\(node v24\\.`));
    // ELF header: 64-bit, little-endian, e_machine 183 (EM_AARCH64).
    const head = readFileSync(built).subarray(0, 20);
    assert.equal(head.subarray(0, 4).toString('latin1'), '\x7fELF');
    assert.equal(head[4], 2);
    assert.equal(head.readUInt16LE(18), 183);
  });

  test('acl add, serve, a POST, its callback, requests show, SIGTERM exits 0', async (t) => {
    const add = await runBinary(bin, ['acl', 'add', TOKEN, '--db', env.DB_PATH!], { cwd: dir, env, timeoutMs: 60_000 });
    assert.equal(add.code, 0, add.stderr);

    const receiver = await startReceiver();
    t.after(() => receiver.close());
    const t0 = performance.now();
    const server = startServe(bin, { cwd: dir, env, timeoutMs: 60_000 });
    t.after(() => server.kill());
    const port = await server.listening;
    t.diagnostic(`start to listening under qemu: ${Math.round(performance.now() - t0)} ms`);

    const { request_id, call } = await postAndAwaitCallback(port, receiver, 60_000);
    assert.deepEqual(call.json, { station_id: STATION, driver_token: TOKEN, status: 'allowed' });

    const show = async () => JSON.parse((await runBinary(bin, ['requests', 'show', request_id, '--json'], { cwd: dir, env, timeoutMs: 60_000 })).stdout);
    await waitFor(async () => (await show()).state === 'delivered', { timeoutMs: 60_000, intervalMs: 200, what: 'delivered' });
    const api = await (await fetch(`http://127.0.0.1:${port}/api/v1/charging-session/${request_id}`)).json();
    assert.deepEqual(await show(), api);

    const exit = await server.stop('SIGTERM', 60_000);
    assert.deepEqual(exit, { code: 0, signal: null }, server.stderr());
    assert.ok(server.lines.some((l) => l.msg === 'stopped'));
  });
});
