import assert from 'node:assert/strict';
import { existsSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import Database from 'better-sqlite3';
import { lockPathOf, tryLock } from '../../src/queue/lock.ts';
import { exitWithin, processDir, runCli, startService, type ServiceProcess } from '../support/process.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// One serving process per database file, decided by a lock the kernel releases when the
// process ends (src/queue/lock.ts): a restart right after kill -9 or in a new container
// serves at once, a second live instance is refused, and an idle service writes nothing.

const STATION = '123e4567-e89b-12d3-a456-426614174000';
const ENV = { CALLBACK_TIMEOUT_MS: '60000', CALLBACK_RETRY_BASE_MS: '10' };

async function post(svc: ServiceProcess, callback_url: string, n = 0): Promise<string> {
  const res = await fetch(`${svc.base}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ station_id: STATION, driver_token: `instance-token-${String(n).padStart(10, '0')}`, callback_url }),
  });
  const body = (await res.json()) as { request_id: string };
  assert.equal(res.status, 202, JSON.stringify(body));
  return body.request_id;
}

async function stopCleanly(svc: ServiceProcess): Promise<void> {
  svc.kill('SIGTERM');
  assert.deepEqual(await exitWithin(svc, 15_000), { code: 0, signal: null }, svc.stderr());
}

test('a restart right after kill -9 serves at once, the dead process not even reaped, and resumes its work', { timeout: 60_000 }, async (t) => {
  // The first callback is held open, so the request is claimed (leased) when the kill lands.
  let held = true;
  const receiver = await startReceiver((_c, _n, res) => {
    if (!held) res.writeHead(200).end();
  });
  t.after(() => receiver.close());
  const first = await startService(t, { env: ENV, unreaped: true });
  const id = await post(first, receiver.url());
  await waitFor(() => receiver.callsFor(id).length === 1, { what: 'the callback in flight' });
  held = false;

  first.kill('SIGKILL');
  const t0 = performance.now();
  const second = await startService(t, { dbPath: first.dbPath, env: ENV });
  const ms = performance.now() - t0;
  assert.doesNotThrow(() => process.kill(first.pid, 0), 'the killed process is not reaped yet: its pid is still taken');
  assert.ok(second.lines.some((l) => l.msg === 'previous instance died; its claimed requests are resumed now' && l.released === 1), 'its lease was handed back at start');
  await waitFor(() => receiver.callsFor(id).length === 2, { timeoutMs: 10_000, what: 'the request called back again by the restart' });
  t.diagnostic(`restart after kill -9: spawn to "listening" in ${ms.toFixed(0)} ms; in-flight work called back again at once`);
  await stopCleanly(second);
});

test('a second live instance on the same file is refused with one line naming the first; the first serves on', { timeout: 60_000 }, async (t) => {
  const first = await startService(t);
  const r = await runCli(t, ['serve'], { env: { DB_PATH: first.dbPath, HOST: '127.0.0.1', PORT: '0', WORKERS: '1' }, timeoutMs: 20_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^chargegate: the database is in use by another chargegate \\(pid ${first.pid} on ${hostname()}, since \\d{4}-\\d\\d-\\d\\dT`));
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.equal((await fetch(`${first.base}/health/ready`)).status, 200, 'the first instance is unaffected');
  await stopCleanly(first);
});

test('a start on a file last served from another host (a container restart: new hostname, same volume) is not refused', { timeout: 60_000 }, async (t) => {
  const first = await startService(t);
  await stopCleanly(first);
  // What a container killed a moment ago leaves: its row, with a fresh heartbeat and a pid
  // that is alive here (ours); only its host name differs.
  const db = new Database(first.dbPath);
  const now = Date.now();
  db.prepare('INSERT OR REPLACE INTO service_instance (id, pid, host, started_at, heartbeat_at) VALUES (1, ?, ?, ?, ?)').run(process.pid, 'container-before-restart', now, now);
  db.close();
  const second = await startService(t, { dbPath: first.dbPath });
  const row = new Database(first.dbPath, { readonly: true });
  t.after(() => row.close());
  assert.deepEqual(row.prepare('SELECT pid, host FROM service_instance').get(), { pid: second.pid, host: hostname() });
  await stopCleanly(second);
});

test('serve waits briefly for the lock, so a CLI command holding it for a moment does not fail a start', { timeout: 60_000 }, async (t) => {
  const dbPath = join(processDir(t), 'cg.db');
  const lock = tryLock(dbPath, { waitMs: 0 });
  assert.ok(lock);
  t.after(() => lock.release());
  let pid = 0;
  const starting = startService(t, { dbPath, onSpawn: (p) => (pid = p) });
  const lockPath = lockPathOf(dbPath);
  // Released only once the service has the lock file open, i.e. is waiting for it.
  await waitFor(
    () => {
      if (!pid) return false;
      try {
        return readdirSync(`/proc/${pid}/fd`).some((fd) => {
          try {
            return readlinkSync(`/proc/${pid}/fd/${fd}`) === lockPath;
          } catch {
            return false;
          }
        });
      } catch {
        return false;
      }
    },
    { timeoutMs: 15_000, intervalMs: 5, what: 'the service waiting on the lock file' },
  );
  lock.release();
  const svc = await starting;
  await stopCleanly(svc);
});

test('the lock file deleted under the running service: it refuses new work and exits 1 for a restart, which serves', { timeout: 60_000 }, async (t) => {
  const svc = await startService(t);
  rmSync(lockPathOf(svc.dbPath));
  assert.deepEqual(await exitWithin(svc, 15_000), { code: 1, signal: null });
  assert.ok(svc.lines.some((l) => Number(l.level) >= 50 && l.msg === 'instance lock file deleted or replaced under the running service; stopping for a restart'));
  const again = await startService(t, { dbPath: svc.dbPath });
  await stopCleanly(again);
});

test('an idle service writes nothing to the database files, /health probes included', { timeout: 60_000 }, async (t) => {
  const receiver = await startReceiver();
  t.after(() => receiver.close());
  const svc = await startService(t);
  // Some work first, so the files are in their everyday state (the WAL holding commits).
  const id = await post(svc, receiver.url());
  await waitFor(async () => {
    const res = await fetch(`${svc.base}/api/v1/charging-session/${id}`);
    return ((await res.json()) as { state: string }).state === 'delivered';
  }, { what: 'the request delivered' });
  const files = [svc.dbPath, `${svc.dbPath}-wal`, `${svc.dbPath}-shm`, lockPathOf(svc.dbPath)].filter((f) => existsSync(f));
  assert.ok(files.length >= 3, 'the database, its WAL and shared-memory file');
  const snapshot = () => files.map((f) => {
    const s = statSync(f);
    return `${f.slice(svc.dbPath.length) || 'db'}: ${s.size} bytes, mtime ${s.mtimeMs}`;
  });
  const before = snapshot();
  // Longer than the old 5 s heartbeat; the monitoring endpoints polled meanwhile.
  const t0 = Date.now();
  let polls = 0;
  while (Date.now() - t0 < 6000) {
    for (const path of ['/health', '/health/ready', '/health/live', '/metrics']) {
      const res = await fetch(`${svc.base}${path}`);
      assert.equal(res.status, 200, path);
      await res.arrayBuffer();
    }
    polls++;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(snapshot(), before, `no file changed over 6 s and ${polls} rounds of /health, /health/ready, /health/live, /metrics`);
  await stopCleanly(svc);
});
