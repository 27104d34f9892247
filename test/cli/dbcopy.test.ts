import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { ServerResponse } from 'node:http';
import Database from 'better-sqlite3';
import { COPY_TABLES } from '../../src/cli/dbtables.ts';
import { connectPg } from '../../src/queue/pg/connect.ts';
import { ENGINES } from '../support/engines.ts';
import { baseEnv, cli, processDir, REPO_ROOT, runCli, startService } from '../support/process.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// `chargegate db copy`: a SQLite file made by the real CLI and the real service (killed
// with SIGKILL while callbacks were in flight, so some requests are claimed) is copied
// into a throwaway PostgreSQL database by the real command in a child process. The
// content must be equal table by table, a second run must change nothing, a run
// interrupted by SIGINT must continue on the next run without duplicates, and a service
// started on the target must deliver the copied open requests.

const pg = ENGINES.find((e) => e.name === 'postgres')!;
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const ALLOWED = 'ABCD-efgh1234567890_~valid.token';
const GROUPED = 'grouped-token-0123456789';
const SCOPED = 'scoped-token-0123456789ab';
const UNKNOWN = 'unknown-token-0123456789';
const PASSWORD = 'pw-s3cret-dbcopy';

type Row = Record<string, unknown>;
type Content = Record<string, Row[]>;

const sortRows = (rows: Row[]) =>
  rows.map((r) => ({ ...r })).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
const select = (t: { name: string; columns: readonly string[] }) => `SELECT ${t.columns.join(', ')} FROM ${t.name}`;

function fileContent(path: string): Content {
  const db = new Database(path, { readonly: true });
  try {
    return Object.fromEntries(COPY_TABLES.map((t) => [t.name, sortRows(db.prepare(select(t)).all() as Row[])]));
  } finally {
    db.close();
  }
}

async function pgContent(url: string): Promise<Content> {
  const sql = connectPg(url, { max: 1 });
  try {
    const out: Content = {};
    for (const t of COPY_TABLES) out[t.name] = sortRows(Array.from(await sql.unsafe(select(t))) as Row[]);
    return out;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** What the target must hold: the file's rows, claimed requests released (due by `copiedBy`). */
function assertCopied(file: Content, target: Content, copiedBy: number): void {
  for (const t of COPY_TABLES) {
    assert.equal(target[t.name]!.length, file[t.name]!.length, `${t.name}: row count`);
    if (t.name !== 'charging_requests') {
      assert.deepEqual(target[t.name], file[t.name], `${t.name}: rows`);
      continue;
    }
    const byId = new Map(target[t.name]!.map((r) => [r.id, r]));
    for (const src of file[t.name]!) {
      const got = byId.get(src.id);
      assert.ok(got, `request ${String(src.id)} copied`);
      if (src.locked_at === null) {
        assert.deepEqual(got, src, `request ${String(src.id)}`);
        continue;
      }
      assert.ok(Number(got.due_at) <= copiedBy, 'a released request is due at once');
      const undecided = src.decision_status === null && (src.state === 'queued' || src.state === 'authorizing');
      const state = undecided ? 'queued' : src.state;
      assert.deepEqual(got, { ...src, locked_at: null, due_at: got.due_at, state }, `released ${String(src.id)}`);
    }
  }
}

function withPassword(url: string): string {
  const u = new URL(url);
  u.password = PASSWORD; // the local server trusts loopback: the password is only there to be hidden
  return u.toString();
}

/** A receiver answering per path; `phase.open` turns the 500s and held calls into 200s. */
async function receivers(t: TestContext) {
  const phase = { open: false };
  const held: ServerResponse[] = [];
  const ok = await startReceiver((c, _n, res) => {
    if (c.path === '/retry' && !phase.open) res.writeHead(500).end();
    else res.writeHead(200).end();
  });
  const slow = await startReceiver((_c, _n, res) => {
    if (phase.open) res.writeHead(200).end();
    else held.push(res);
  });
  t.after(async () => {
    await ok.close();
    await slow.close();
  });
  return { ok, slow, phase };
}

describe('db copy', { skip: pg.skip }, () => {
  it('copies a used file: equal content, reruns change nothing, a cut run goes on, serve delivers', async (t) => {
    const dbPath = join(processDir(t), 'source.db');
    const env = { DB_PATH: dbPath };
    await cli(t, ['acl', 'group', 'add', 'fleet'], { env });
    await cli(t, ['acl', 'add', ALLOWED, '--note', 'staff'], { env });
    await cli(t, ['acl', 'add', GROUPED, '--group', 'fleet'], { env });
    await cli(t, ['acl', 'add', SCOPED, '--station', STATION, '--expires', '2099-01-01T00:00:00Z'], { env });
    await cli(t, ['stations', 'add', STATION, '--name', 'north gate'], { env });
    const key = (await cli(t, ['keys', 'add', 'site-a'], { env })).stdout.trim();

    const rx = await receivers(t);
    const svc = await startService(t, { dbPath, env: { CALLBACK_TIMEOUT_MS: '120000' } });
    const post = async (token: string, url: string, idem?: string) => {
      const res = await fetch(`${svc.base}/api/v1/charging-session`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${key}`,
          ...(idem ? { 'idempotency-key': idem } : {}),
        },
        body: JSON.stringify({ station_id: STATION, driver_token: token, callback_url: url }),
      });
      assert.equal(res.status, 202);
      return ((await res.json()) as { request_id: string }).request_id;
    };
    for (let i = 0; i < 20; i++) {
      await post(i % 2 ? ALLOWED : GROUPED, rx.ok.url('/ok'), i < 5 ? `idem-${i}` : undefined);
    }
    for (let i = 0; i < 5; i++) await post(UNKNOWN, rx.ok.url('/ok'));
    for (let i = 0; i < 15; i++) await post(SCOPED, rx.ok.url('/retry'));
    for (let i = 0; i < 10; i++) await post(ALLOWED, rx.slow.url('/held'));
    const okCalls = () => rx.ok.calls.filter((c) => c.path === '/ok').length;
    await waitFor(() => okCalls() >= 25 && rx.ok.calls.some((c) => c.path === '/retry') && rx.slow.calls.length > 0,
      { what: 'deliveries, retries and held callbacks under way', timeoutMs: 20_000 });

    // While the service holds the file, the copy is refused (without --live) and writes nothing.
    const data = await pg.appDatabase();
    t.after(data.drop);
    const target = withPassword(data.env.DATABASE_URL!);
    const refused = await runCli(t, ['db', 'copy', '--to', target, '--db', dbPath]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /stop it first/);
    assert.equal(Number((await data.run('SELECT COUNT(*) AS n FROM acl'))[0]!.n), 0);
    // --live copies a snapshot anyway, and says what it leaves out.
    const liveData = await pg.appDatabase();
    t.after(liveData.drop);
    const live = await cli(t, ['db', 'copy', '--live', '--to', liveData.env.DATABASE_URL!, '--db', dbPath]);
    assert.match(live.stderr, /requests accepted after this snapshot are not copied/);
    assert.equal(Number((await liveData.run('SELECT COUNT(*) AS n FROM acl'))[0]!.n), 3);

    svc.kill('SIGKILL');
    await svc.stopped;
    const file = fileContent(dbPath);
    const claimed = file.charging_requests!.filter((r) => r.locked_at !== null).length;
    assert.ok(claimed > 0, 'the killed service left claimed requests behind');
    for (const name of ['callback_attempts', 'unknown_tokens', 'idempotency_keys']) {
      assert.ok(file[name]!.length > 0, `the file has ${name}`);
    }
    const requests = file.charging_requests!;
    const open = requests.filter((r) => ['queued', 'authorizing', 'delivering'].includes(String(r.state)));
    assert.ok(open.length > 0, 'open requests to carry over');

    // Usage errors: exit 2, nothing done.
    assert.equal((await runCli(t, ['db', 'copy', '--to', 'mysql://h/db', '--db', dbPath])).code, 2);
    assert.equal((await runCli(t, ['db', 'copy', '--db', dbPath])).code, 2);

    const first = await cli(t, ['db', 'copy', '--to', target, '--db', dbPath]);
    const copiedBy = Date.now();
    assert.match(first.stderr, new RegExp(`charging_requests ${requests.length}/${requests.length}`));
    const copied = await pgContent(target);
    assertCopied(file, copied, copiedBy);
    const depth = Number((await data.run('SELECT open FROM queue_depth'))[0]!.open);
    assert.equal(depth, open.length, 'queue_depth counts the copied open requests');

    const second = await cli(t, ['db', 'copy', '--to', target, '--db', dbPath]);
    assert.match(second.stdout, /done: 0 rows copied/);
    assert.deepEqual(await pgContent(target), copied, 'a second run changes nothing');
    for (const out of [first, second, refused]) {
      assert.ok(!`${out.stdout}${out.stderr}`.includes(PASSWORD), 'the password never shows');
    }

    // Interrupted: one row per INSERT, SIGINT once the requests are being copied.
    const data2 = await pg.appDatabase();
    t.after(data2.drop);
    const target2 = withPassword(data2.env.DATABASE_URL!);
    const args = ['db', 'copy', '--to', target2, '--db', dbPath, '--batch-size', '1'];
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'chargegate.ts'), ...args],
      { cwd: REPO_ROOT, env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (!stderr.includes('db copy: api_keys') && (stderr + s).includes('db copy: api_keys')) child.kill('SIGINT');
      stderr += s;
    });
    const code = await new Promise<number | null>((r) => child.once('close', r));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /interrupted by SIGINT/);
    assert.match(stderr, /run the same command again to continue/);
    assert.ok(!stderr.includes(PASSWORD));
    const partial = Number((await data2.run('SELECT COUNT(*) AS n FROM charging_requests'))[0]!.n);
    assert.ok(partial < requests.length, `stopped part way (${partial} of ${requests.length})`);
    const rerun = await cli(t, ['db', 'copy', '--to', target2, '--db', dbPath]);
    assertCopied(file, await pgContent(target2), Date.now());
    t.diagnostic(`interrupted at ${partial} requests; rerun: ${rerun.stdout.trim()}`);

    // A service on the target delivers what was open in the file (held and retried callbacks now answered).
    rx.phase.open = true;
    const okBefore = rx.ok.calls.length;
    const slowBefore = rx.slow.calls.length;
    await startService(t, { env: { DATABASE_URL: data2.env.DATABASE_URL! } });
    await waitFor(async () => {
      const rows = await data2.run("SELECT COUNT(*) AS n FROM charging_requests WHERE finished_at IS NULL");
      return Number(rows[0]!.n) === 0;
    }, { what: 'every copied open request finished', timeoutMs: 30_000 });
    const marks = open.map(() => '?').join(',');
    const ids = open.map((r) => r.id);
    const states = await data2.run(`SELECT id, state FROM charging_requests WHERE id IN (${marks})`, ...ids);
    const notDelivered = states.filter((r) => r.state !== 'delivered');
    assert.deepEqual(notDelivered, [], 'every copied open request delivered');
    assert.equal(states.length, open.length);
    const later = [...rx.ok.calls.slice(okBefore), ...rx.slow.calls.slice(slowBefore)];
    const called = new Set(later.map((c) => String(c.headers['webhook-id'])));
    for (const id of ids) assert.ok(called.has(String(id)), `request ${String(id)} called back on PostgreSQL`);
  });

  it('a lost connection stops the copy with a summary; the next run completes it without duplicates', async (t) => {
    const dir = processDir(t);
    const dbPath = join(dir, 'acl.db');
    const csv = join(dir, 'acl.csv');
    const lines = ['token,stations,expires_at,blocked,note'];
    for (let i = 0; i < 2000; i++) {
      lines.push(`lost-conn-${String(i).padStart(12, '0')},${i % 4 ? '' : STATION},,false,n${i}`);
    }
    writeFileSync(csv, `${lines.join('\n')}\n`);
    await cli(t, ['acl', 'import', csv, '--db', dbPath]);
    const data = await pg.appDatabase();
    t.after(data.drop);
    const db = new URL(data.env.DATABASE_URL!).pathname.slice(1);
    const args = ['db', 'copy', '--to', data.env.DATABASE_URL!, '--db', dbPath, '--batch-size', '1'];
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'chargegate.ts'), ...args],
      { cwd: REPO_ROOT, env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let cut: Promise<unknown> | null = null;
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      // The server ends the command's session while it copies the ACL, one row per INSERT.
      if (!cut && stderr.includes('db copy: acl_groups')) {
        cut = data.run(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ? AND datname = ?',
          'chargegate db copy', db);
      }
    });
    const code = await new Promise<number | null>((r) => child.once('close', r));
    await cut;
    assert.equal(code, 1, stderr);
    assert.match(stderr, /failed: /);
    assert.match(stderr, /run the same command again to continue/);
    const partial = Number((await data.run('SELECT COUNT(*) AS n FROM acl'))[0]!.n);
    assert.ok(partial < 2000, `stopped part way (${partial})`);
    await cli(t, ['db', 'copy', '--to', data.env.DATABASE_URL!, '--db', dbPath]);
    const target = await pgContent(data.env.DATABASE_URL!);
    const file = fileContent(dbPath);
    assert.deepEqual(target.acl, file.acl);
    assert.deepEqual(target.acl_stations, file.acl_stations);
    assert.equal(file.acl!.length, 2000);
    const failed = stderr.split('\n').find((l) => l.includes('failed'));
    t.diagnostic(`connection cut at ${partial} of 2000 ACL entries: ${failed}`);
  });
});
