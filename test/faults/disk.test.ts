import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { startApp } from '../support/app.ts';
import { processDir, runCli, startService, exitWithin, type ServiceProcess } from '../support/process.ts';
import { startReceiver, type Receiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';
import { fillDisk, holdWriteLock, remount, smallDisk } from './support/disk.ts';
import { callbackCounts, STATION } from './support/load.ts';
import { assertShape } from './support/shape.ts';

// docs/reliability.md, promise "a database that cannot be written gets 503, not 500 or a
// hang, and the service comes back by itself": a full disk, a read-only database, an admin
// holding the write lock, the WAL deleted under the running service; and at start, a file
// from a newer chargegate or not a database at all is refused and left as it was.

const ENV = { AUTHORIZATION_TIMEOUT_MS: '1000', CALLBACK_TIMEOUT_MS: '1000', CALLBACK_RETRY_BASE_MS: '10', CALLBACK_RETRY_MAX_MS: '200', CALLBACK_MAX_ATTEMPTS: '50' };

let seq = 0;
interface Answer {
  status: number;
  ms: number;
  retryAfter: string | null;
  body: string;
  id: string | null;
}

async function post(base: string, callback_url: string): Promise<Answer> {
  const t0 = performance.now();
  const res = await fetch(`${base}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ station_id: STATION, driver_token: `disk-token-${String(++seq).padStart(12, '0')}`, callback_url }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.text();
  return {
    status: res.status,
    ms: performance.now() - t0,
    retryAfter: res.headers.get('retry-after'),
    body,
    id: res.status === 202 ? (JSON.parse(body) as { request_id: string }).request_id : null,
  };
}

async function health(base: string): Promise<{ code: number; status: string; database: { status: string; error?: string } }> {
  const res = await fetch(`${base}/health`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { status: string; components: { database: { status: string; error?: string } } };
  return { code: res.status, status: body.status, database: body.components.database };
}

/** Every answer during a fault: 202 (room left in the WAL) or 503 + Retry-After in the shape, fast. */
function assertFaultAnswers(answers: Answer[], what: string): void {
  for (const a of answers) {
    assert.ok(a.status === 202 || a.status === 503, `${what}: ${a.status} ${a.body}`);
    assert.ok(a.ms < 2000, `${what}: answered in ${a.ms.toFixed(0)} ms (no hang)`);
    if (a.status === 503) {
      assert.equal(a.retryAfter, '5', `${what}: Retry-After`);
      assertShape(a.body, 'rejected', what);
    }
  }
  assert.ok(answers.some((a) => a.status === 503), `${what}: the fault was refused with 503 (${answers.map((a) => a.status).join(',')})`);
}

/** Posts until one is accepted again; ms from the call. */
async function until202(base: string, url: string, ids: string[], timeoutMs = 15_000): Promise<number> {
  const t0 = Date.now();
  await waitFor(
    async () => {
      const a = await post(base, url);
      if (a.id) ids.push(a.id);
      return a.status === 202;
    },
    { timeoutMs, intervalMs: 100, what: 'a 202 after the fault cleared' },
  );
  return Date.now() - t0;
}

async function allDelivered(receiver: Receiver, ids: string[], timeoutMs: number): Promise<void> {
  await waitFor(() => {
    const seen = callbackCounts(receiver.calls);
    return ids.every((id) => seen.has(id));
  }, { timeoutMs, intervalMs: 100, what: `all ${ids.length} accepted requests called back` }).catch((err: Error) => {
    const seen = callbackCounts(receiver.calls);
    throw new Error(`${err.message}: ${ids.filter((id) => !seen.has(id)).length} missing`);
  });
}

function logged(svc: ServiceProcess | { lines: Array<Record<string, unknown>> }, re: RegExp): boolean {
  return svc.lines.some((l) => Number(l.level) >= 50 && re.test(JSON.stringify(l)));
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('disk and database faults', { concurrency: true }, () => {
  it('the disk fills up: 503 + Retry-After, health DOWN with the reason, and service resumes once space is freed', { timeout: 90_000 }, async (t) => {
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    const mnt = smallDisk(t, 8 * 1024 * 1024);
    let base: string;
    let lines: Array<Record<string, unknown>>;
    let fill: () => void;
    let free: () => void;
    if (mnt) {
      const svc = await startService(t, { dbPath: join(mnt, 'cg.db'), env: ENV });
      base = svc.base;
      lines = svc.lines;
      let filler = '';
      fill = () => void (filler = fillDisk(mnt).path);
      free = () => rmSync(filler);
      t.diagnostic(`tmpfs of 8 MiB at ${mnt}`);
    } else {
      // No permission to mount: the same SQLITE_FULL, made by capping the file's size.
      t.diagnostic('mount not permitted: simulating ENOSPC with PRAGMA max_page_count');
      const s = await startApp(t, ENV);
      base = s.base;
      lines = s.lines;
      fill = () => void s.app.db.pragma(`max_page_count = ${s.app.db.pragma('page_count', { simple: true })}`);
      free = () => void s.app.db.pragma('max_page_count = 1073741823');
    }
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await post(base, receiver.url())).id!);
    await allDelivered(receiver, ids, 10_000);

    fill();
    const during: Answer[] = [];
    // The WAL may still have room for a few commits before writes fail.
    for (let i = 0; i < 300 && !during.some((a) => a.status === 503); i++) during.push(await post(base, receiver.url()));
    for (let i = 0; i < 10; i++) during.push(await post(base, receiver.url()));
    assertFaultAnswers(during, 'disk full');
    ids.push(...during.flatMap((a) => (a.id ? [a.id] : [])));
    // (The simulation only stops the file from growing; the health probe rewrites an
    // existing row, so only a real full disk fails it.)
    if (mnt) {
      const h = await health(base);
      assert.equal(h.code, 503);
      assert.equal(h.database.status, 'DOWN');
      assert.match(String(h.database.error), /full/i, 'health says why');
    }
    assert.ok(logged({ lines }, /database or disk is full|SQLITE_FULL/), 'an error log line says why');

    free();
    const recoveryMs = await until202(base, receiver.url(), ids);
    await waitFor(async () => (await health(base)).status === 'UP', { timeoutMs: 10_000, what: 'health UP again' });
    for (let i = 0; i < 20; i++) ids.push((await post(base, receiver.url())).id!);
    t.diagnostic(`disk full: ${during.filter((a) => a.status === 503).length} of ${during.length} refused with 503 (max ${Math.max(...during.map((a) => a.ms)).toFixed(0)} ms), resumed ${recoveryMs} ms after space was freed`);
    // Everything that got a 202, before, during and after, is called back. (Work whose
    // decision could not be committed waits out its lease: AUTHORIZATION_TIMEOUT_MS +
    // CALLBACK_TIMEOUT_MS + 30 s.)
    await allDelivered(receiver, ids, 45_000);
  });

  it('a read-only filesystem at start is refused with a clear message; the file is untouched and the next start works', { timeout: 60_000 }, async (t) => {
    const mnt = smallDisk(t, 8 * 1024 * 1024);
    if (!mnt) return t.skip('mount not permitted (needs root): cannot make a read-only filesystem');
    const dbPath = join(mnt, 'cg.db');
    const first = await startService(t, { dbPath, env: ENV });
    first.kill('SIGTERM');
    assert.deepEqual(await exitWithin(first, 15_000), { code: 0, signal: null });
    const before = sha(dbPath);
    remount(mnt, 'ro');
    const r = await runCli(t, ['serve'], { env: { DB_PATH: dbPath, HOST: '127.0.0.1', PORT: '0', WORKERS: '1' }, timeoutMs: 20_000 });
    assert.equal(r.code, 1, `exit 1: ${r.stderr}`);
    assert.match(r.stderr, /read-only|readonly/i, 'the message says the file cannot be written');
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    remount(mnt, 'rw');
    assert.equal(sha(dbPath), before, 'the file is untouched');
    const again = await startService(t, { dbPath, env: ENV });
    again.kill('SIGTERM');
    assert.deepEqual(await exitWithin(again, 15_000), { code: 0, signal: null });
  });

  it('the database turns read-only while serving: 503 + Retry-After, health DOWN, back when writable', { timeout: 30_000 }, async (t) => {
    // A running process keeps the write access it opened with (chmod changes nothing, and a
    // mount with open files cannot be remounted read-only), so SQLite's own read-only mode
    // stands in for the kernel's EROFS: both surface as SQLITE_READONLY.
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    const s = await startApp(t, ENV);
    const ids: string[] = [(await post(s.base, receiver.url())).id!];
    s.app.db.pragma('query_only = ON');
    const during: Answer[] = [];
    for (let i = 0; i < 10; i++) during.push(await post(s.base, receiver.url()));
    assertFaultAnswers(during, 'read-only');
    assert.ok(during.every((a) => a.status === 503));
    const h = await health(s.base);
    assert.equal(h.database.status, 'DOWN');
    assert.match(String(h.database.error), /read-?only/i);
    assert.ok(logged(s, /readonly|read-only/i), 'an error log line says why');
    s.app.db.pragma('query_only = OFF');
    await until202(s.base, receiver.url(), ids);
    assert.equal((await health(s.base)).status, 'UP');
    await allDelivered(receiver, ids, 10_000);
  });

  it('an admin holds the write lock (sqlite3 BEGIN IMMEDIATE): 503 within the busy timeout, never a hang; back at once when released', { timeout: 60_000 }, async (t) => {
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    const svc = await startService(t, { env: ENV });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await post(svc.base, receiver.url())).id!);
    await allDelivered(receiver, ids, 10_000);
    const lock = await holdWriteLock(t, svc.dbPath);
    t.diagnostic(`lock held with ${lock.via}`);
    const during: Answer[] = [];
    const t0 = Date.now();
    while (Date.now() - t0 < 2000) during.push(await post(svc.base, receiver.url()));
    assertFaultAnswers(during, 'locked');
    assert.ok(during.every((a) => a.status === 503), 'no commit can happen while the lock is held');
    const live = await fetch(`${svc.base}/health/live`, { signal: AbortSignal.timeout(2000) });
    assert.equal(live.status, 200, 'the process stays responsive');
    const h = await health(svc.base);
    assert.equal(h.database.status, 'DOWN');
    assert.match(String(h.database.error), /locked|busy/i);
    assert.ok(logged(svc, /database is locked/), 'an error log line says why');
    await lock.release();
    const recoveryMs = await until202(svc.base, receiver.url(), ids);
    assert.equal((await health(svc.base)).status, 'UP');
    for (let i = 0; i < 10; i++) ids.push((await post(svc.base, receiver.url())).id!);
    await allDelivered(receiver, ids, 15_000);
    t.diagnostic(`write lock: ${during.length} requests refused with 503 (max ${Math.max(...during.map((a) => a.ms)).toFixed(0)} ms), resumed ${recoveryMs} ms after release`);
  });

  it('the WAL is deleted under the running service: its commits are saved into the main file, the service restarts, nothing accepted is lost', { timeout: 60_000 }, async (t) => {
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    let svc = await startService(t, { env: ENV });
    const dbPath = svc.dbPath;
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await post(svc.base, receiver.url())).id!);
    rmSync(`${dbPath}-wal`);
    const deletedAt = Date.now();
    const after: Answer[] = [];
    // Until the service notices, it accepts into the WAL it still holds open.
    while (svc.child.exitCode === null && after.length < 200) {
      try {
        after.push(await post(svc.base, receiver.url()));
      } catch {
        break; // the process is gone
      }
    }
    const exit = await exitWithin(svc, 15_000);
    const reactedMs = Date.now() - deletedAt;
    assert.deepEqual(exit, { code: 1, signal: null }, 'it stops for a restart (Restart=on-failure)');
    assert.ok(logged(svc, /write-ahead log file deleted or replaced/), 'an error log line says why');
    for (const a of after.filter((x) => x.status !== 202)) {
      assert.equal(a.status, 503, a.body);
      assert.equal(a.retryAfter, '5');
      assertShape(a.body, 'rejected', 'after the WAL was deleted');
    }
    ids.push(...after.flatMap((a) => (a.id ? [a.id] : [])));
    // What a power cut at this moment would leave: the main file alone (no WAL beside it).
    const copy = join(processDir(t), 'main-only.db');
    copyFileSync(dbPath, copy);
    const db = new Database(copy, { readonly: true });
    const stored = new Set(db.prepare('SELECT id FROM charging_requests').pluck().all() as string[]);
    db.close();
    const lost = ids.filter((id) => !stored.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${ids.length} accepted requests are not in the main file`);
    svc = await startService(t, { dbPath, env: ENV });
    await allDelivered(receiver, ids, 20_000);
    svc.kill('SIGTERM');
    assert.deepEqual(await exitWithin(svc, 15_000), { code: 0, signal: null });
    t.diagnostic(`WAL deleted: noticed and stopped within ${reactedMs} ms; ${after.filter((a) => a.status === 202).length} accepted meanwhile, ${after.filter((a) => a.status === 503).length} refused; lost 0 of ${ids.length}`);
  });
});

describe('a database file the service must not touch', () => {
  it('from a newer chargegate, or not a database at all: refused at start with one clear line, the file byte-for-byte unchanged', { timeout: 60_000 }, async (t) => {
    const dir = processDir(t);
    const good = join(dir, 'good.db');
    const first = await startService(t, { dbPath: good, env: ENV });
    first.kill('SIGTERM');
    await exitWithin(first, 15_000);

    const newerWal = join(dir, 'newer-wal.db');
    copyFileSync(good, newerWal);
    const w = new Database(newerWal);
    w.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'from the future', '2030-01-01T00:00:00Z')").run();
    w.close();
    // The same, but in rollback-journal mode (e.g. after `sqlite3 file .backup` or VACUUM INTO).
    const newerRollback = join(dir, 'newer-rollback.db');
    copyFileSync(newerWal, newerRollback);
    const r = new Database(newerRollback);
    r.pragma('journal_mode = DELETE');
    r.close();
    const garbage = join(dir, 'garbage.db');
    writeFileSync(garbage, Buffer.alloc(64 * 1024, 0x5a));
    const truncated = join(dir, 'truncated.db');
    writeFileSync(truncated, readFileSync(good).subarray(0, 4096 + 100));
    const header = join(dir, 'header.db');
    const bytes = readFileSync(good);
    bytes.write('SQLite format 4\0', 0, 'latin1');
    writeFileSync(header, bytes);

    const cases: Array<[string, string, RegExp]> = [
      [newerWal, 'newer schema (WAL)', /schema version 999 is newer/],
      [newerRollback, 'newer schema (rollback journal)', /schema version 999 is newer/],
      [garbage, 'not a database', /not a database/],
      [header, 'a damaged header', /not a database/],
      [truncated, 'truncated', /malformed|not a database|corrupt/i],
    ];
    for (const [path, what, message] of cases) {
      const before = sha(path);
      const res = await runCli(t, ['serve'], { env: { DB_PATH: path, HOST: '127.0.0.1', PORT: '0', WORKERS: '1' }, timeoutMs: 20_000 });
      assert.equal(res.code, 1, `${what}: exit 1 (${res.stderr})`);
      assert.match(res.stderr, message, what);
      assert.equal(res.stderr.trim().split('\n').length, 1, `${what}: one line: ${res.stderr}`);
      assert.doesNotMatch(res.stderr, /\n\s+at /, `${what}: no stack trace`);
      assert.equal(sha(path), before, `${what}: the file is untouched`);
      assert.ok(!existsSync(`${path}-wal`) || readFileSync(`${path}-wal`).length === 0, `${what}: no WAL left beside it`);
    }
  });
});

describe('work in flight during a database fault', () => {
  it(
    'resumes within seconds of the fault clearing, not after a whole lease',
    // The dispatcher keeps results whose commit failed and retries the commit
    // (src/dispatch/record.ts commitPersistently) instead of leaving the rows to their lease.
    { timeout: 60_000 },
    async (t) => {
      // Callbacks take 300 ms, so the lock below lands while their attempts wait to be recorded.
      const receiver = await startReceiver((_c, _n, res) => void setTimeout(() => res.writeHead(200).end(), 300));
      t.after(() => receiver.close());
      const s = await startApp(t, ENV);
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push((await post(s.base, receiver.url())).id!);
      await waitFor(() => receiver.calls.length > 0, { what: 'callbacks in flight' });
      const lock = await holdWriteLock(t, s.config.dbPath);
      await new Promise((r) => setTimeout(r, 1500));
      await lock.release();
      const released = Date.now();
      const open = s.app.db.prepare("SELECT COUNT(*) FROM charging_requests WHERE state <> 'delivered' AND id IN (SELECT value FROM json_each(?))").pluck();
      // Generous, yet far inside a lease (AUTHORIZATION_TIMEOUT_MS + CALLBACK_TIMEOUT_MS + 30 s).
      await waitFor(() => open.get(JSON.stringify(ids)) === 0, { timeoutMs: 20_000, intervalMs: 50, what: 'every request delivered' }).catch((err: Error) => {
        throw new Error(`${err.message}: ${String(open.get(JSON.stringify(ids)))} of ${ids.length} still open ${Date.now() - released} ms after the lock was released`);
      });
    },
  );
});
