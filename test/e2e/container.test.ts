import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { buildBinary, postAndAwaitCallback } from '../support/binary.ts';
import { freePort } from '../support/port.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';
// @ts-expect-error plain ESM build script without types
import { rootfsMissing } from '../../packaging/rootfs.mjs';
// @ts-expect-error plain ESM build script without types
import { localBase, podmanArgs, podmanEnv } from '../../packaging/image.mjs';

// The Dockerfile, built with podman from a local Debian base (debootstrap; no registry
// is reachable in CI) and run: a POST, its callback, the health check, `podman stop` ->
// exit 0 through SIGTERM, and the data still there after the container starts again.

const execP = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const id = `cgtest-${process.pid}`;
const podman = (...args: string[]) => execP('podman', [...podmanArgs, ...args], { env: podmanEnv(), maxBuffer: 16 << 20 });

function whyNot(): string | undefined {
  if (spawnSync('sh', ['-c', 'command -v podman && command -v runc'], { stdio: 'ignore' }).status !== 0) return 'podman or runc not installed (Debian: podman runc)';
  if (process.getuid?.() !== 0) return 'the container test runs podman as root';
  const r = spawnSync('podman', [...podmanArgs, 'info'], { env: podmanEnv(), encoding: 'utf8' });
  if (r.status !== 0) return `podman cannot run here: ${(r.stderr || r.stdout).trim().split('\n').at(-1)}`;
  return rootfsMissing();
}

describe('the container image (podman)', { timeout: 600_000, skip: whyNot() }, () => {
  let dir: string;
  const image = `localhost/chargegate:${id}`;
  before(async () => {
    await buildBinary();
    dir = mkdtempSync(join(tmpdir(), 'cg-ctr-'));
    await podman('build', '--format', 'docker', '--network', 'host', '--build-arg', `BASE=${localBase()}`, '-t', image, root);
  });
  after(async () => {
    await podman('rm', '-f', '-t', '0', id).catch(() => {});
    await podman('volume', 'rm', '-f', id).catch(() => {});
    await podman('rmi', '-f', image).catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('image config: non-root, /data volume, health check on /health/ready, SIGTERM; compose grace > SHUTDOWN_TIMEOUT_MS', async () => {
    type Health = { Test: string[] };
    const [cfg] = JSON.parse((await podman('image', 'inspect', image)).stdout) as Array<{ Config: Record<string, unknown>; Healthcheck?: Health }>;
    const c = cfg!.Config as { User: string; Volumes: Record<string, unknown>; StopSignal: string; Env: string[]; Healthcheck?: Health };
    // podman shows it beside Config (Docker inside it).
    c.Healthcheck ??= cfg!.Healthcheck;
    assert.equal(c.User, 'chargegate:chargegate');
    assert.ok('/data' in c.Volumes);
    assert.equal(c.StopSignal, 'SIGTERM');
    assert.match(c.Healthcheck?.Test.join(' ') ?? '', /\/health\/ready/);
    const shutdownMs = Number(c.Env.find((e) => e.startsWith('SHUTDOWN_TIMEOUT_MS='))!.split('=')[1]);
    const compose = readFileSync(join(root, 'compose.yaml'), 'utf8');
    const grace = Number(compose.match(/^\s+stop_grace_period: (\d+)s$/m)![1]) * 1000;
    const composeShutdown = Number(compose.match(/^\s+SHUTDOWN_TIMEOUT_MS: "(\d+)"$/m)![1]);
    // The drain, then up to 5 s to close the listener and the database.
    assert.ok(grace > Math.max(shutdownMs, composeShutdown) + 5000, `${grace} ms`);
    assert.match(compose, /^\s+stop_signal: SIGTERM$/m);
    assert.match(compose, /chargegate-data:\/data/);
  });

  test('run, POST, callback, healthy, podman stop -> exit 0, the data survives a restart', async (t) => {
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    const port = await freePort();
    await podman('run', '-d', '--name', id, '--network', 'host', '-e', `PORT=${port}`, '-e', 'HOST=127.0.0.1', '-v', `${id}:/data`, image);
    const ready = () => waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => null))?.status === 200, { timeoutMs: 30_000, intervalMs: 100, what: 'ready' });
    await ready();
    const add = await podman('exec', id, 'chargegate', 'acl', 'add', TOKEN);
    assert.match(add.stdout, /./);

    const { request_id, call } = await postAndAwaitCallback(port, receiver, 15_000);
    assert.deepEqual(call.json, { station_id: STATION, driver_token: TOKEN, status: 'allowed' });

    // Runs the image's HEALTHCHECK now (exit 0 = healthy; it rejects otherwise).
    await podman('healthcheck', 'run', id);
    const health = JSON.parse((await podman('inspect', id, '--format', '{{json .State.Health}}')).stdout) as { Status: string };
    assert.equal(health.Status, 'healthy');

    await podman('stop', '-t', '30', id);
    const state = JSON.parse((await podman('inspect', id, '--format', '{{json .State}}')).stdout) as { ExitCode: number };
    assert.equal(state.ExitCode, 0);
    const logs = (await podman('logs', id)).stdout;
    assert.match(logs, /"msg":"stopped"/);

    await podman('start', id);
    await ready();
    const after = (await (await fetch(`http://127.0.0.1:${port}/api/v1/charging-session/${request_id}`)).json()) as { state: string };
    assert.equal(after.state, 'delivered');
    await podman('stop', '-t', '30', id);
    writeFileSync(join(dir, 'done'), '');
  });
});
