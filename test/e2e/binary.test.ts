import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pkg from '../../package.json' with { type: 'json' };
import { buildBinary, folderEnv, runBinary, serveAndAwaitCallback } from '../support/binary.ts';
import { ENGINES } from '../support/engines.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// dist/chargegate copied alone into a temp folder (no node, no node_modules next to it)
// and run with a bare environment, as an operator would on a gateway.

const STATION = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';

describe('the single executable', { timeout: 300_000 }, () => {
  let dir: string;
  let bin: string;
  let env: Record<string, string>;

  before(async () => {
    const built = await buildBinary();
    dir = mkdtempSync(join(tmpdir(), 'cg-bin-'));
    bin = join(dir, 'chargegate');
    copyFileSync(built, bin);
    chmodSync(bin, 0o755);
    env = folderEnv(dir);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('--version prints the version and exits 0, whatever NODE_OPTIONS says', async () => {
    // execArgvExtension "none": a gateway's NODE_OPTIONS must not reach the binary.
    const r = await runBinary(bin, ['--version'], { cwd: dir, env: { ...env, NODE_OPTIONS: '--require /nonexistent/hook.js' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^chargegate ${pkg.version.replaceAll('.', '\\.')} \\(node v24\\.`));
  });

  test('a bad flag gives a one-line error and exit 2', async () => {
    const r = await runBinary(bin, ['--no-such-flag'], { cwd: dir, env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--no-such-flag/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });

  const pg = ENGINES.find((e) => e.name === 'postgres')!;
  test('the admin commands on PostgreSQL: the client is in the executable; backup points to pg_dump', { skip: pg.skip }, async (t) => {
    const data = await pg.appDatabase();
    t.after(data.drop);
    const pgEnv = { ...env, DATABASE_URL: data.env.DATABASE_URL! };
    const add = await runBinary(bin, ['keys', 'add', 'site-a'], { cwd: dir, env: pgEnv });
    assert.equal(add.code, 0, add.stderr);
    assert.equal((await data.run('SELECT name FROM api_keys'))[0]?.name, 'site-a', 'written to PostgreSQL');
    const st = await runBinary(bin, ['stats', '--json', '--database-url', data.env.DATABASE_URL!], { cwd: dir, env });
    assert.equal(st.code, 0, st.stderr);
    assert.equal(JSON.parse(st.stdout).states.failed, 0);
    const backup = await runBinary(bin, ['backup', join(dir, 'pg.dump')], { cwd: dir, env: pgEnv });
    assert.equal(backup.code, 2);
    assert.match(backup.stderr, /pg_dump --format=custom/);
  });

  test('acl import --replace: the import lock opens with the unpacked addon; the new list is in force', async () => {
    // The import takes a lock file through SQLite: without the addon path it failed here only.
    const db = join(dir, 'import', 'cg.db');
    const csv = join(dir, 'import.csv');
    writeFileSync(csv, `token,stations\n${TOKEN},${STATION}\nEFGH-efgh1234567890_~valid.token,\n`);
    const r = await runBinary(bin, ['acl', 'import', csv, '--replace', '--db', db], { cwd: dir, env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'acl: imported 2, removed 0\n');
    const list = await runBinary(bin, ['acl', 'list', '--json', '--db', db], { cwd: dir, env });
    assert.equal(JSON.parse(list.stdout).length, 2, list.stdout);
  });

  test('acl add, serve, an allowed decision reaches the callback, SIGTERM exits 0', async (t) => {
    const add = await runBinary(bin, ['acl', 'add', TOKEN, '--db', env.DB_PATH!], { cwd: dir, env });
    assert.equal(add.code, 0, add.stderr);

    const { server, port, request_id, call } = await serveAndAwaitCallback(t, bin, { cwd: dir, env });
    assert.ok(port > 0);
    assert.equal(call.path, '/cb');
    assert.deepEqual(call.json, { station_id: STATION, driver_token: TOKEN, status: 'allowed' });

    // The decision ran in a worker thread on the unpacked addon and task bundle.
    const cached = readdirSync(env.CHARGEGATE_CACHE_DIR!);
    assert.ok(cached.some((f) => /^better_sqlite3-[0-9a-f]{16}\.node$/.test(f)), cached.join(', '));
    assert.ok(cached.some((f) => /^task-[0-9a-f]{16}\.cjs$/.test(f)), cached.join(', '));
    assert.ok(!cached.some((f) => f.endsWith('.tmp')), cached.join(', '));

    // requests show prints what the API answers.
    const shown = await runBinary(bin, ['requests', 'show', request_id, '--json'], { cwd: dir, env });
    assert.equal(shown.code, 0, shown.stderr);
    await waitFor(async () => JSON.parse((await runBinary(bin, ['requests', 'show', request_id, '--json'], { cwd: dir, env })).stdout).state === 'delivered', { what: 'delivered' });
    const api = await (await fetch(`http://127.0.0.1:${port}/api/v1/charging-session/${request_id}`)).json();
    assert.deepEqual(JSON.parse((await runBinary(bin, ['requests', 'show', request_id, '--json'], { cwd: dir, env })).stdout), api);

    // A receiver that refuses (410) fails the request at once; replay re-delivers it.
    let refuse = true;
    const picky = await startReceiver((_c, _n, r) => r.writeHead(refuse ? 410 : 200).end());
    t.after(() => picky.close());
    const res2 = await fetch(`http://127.0.0.1:${port}/api/v1/charging-session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: picky.url('/cb') }),
    });
    const failedId = ((await res2.json()) as { request_id: string }).request_id;
    await waitFor(async () => JSON.parse((await runBinary(bin, ['requests', 'list', '--state', 'failed', '--json'], { cwd: dir, env })).stdout).length === 1, { timeoutMs: 15_000, what: 'failed' });
    refuse = false;
    const replay = await runBinary(bin, ['replay', failedId], { cwd: dir, env });
    assert.equal(replay.code, 0, replay.stderr);
    await waitFor(() => picky.calls.length === 2, { timeoutMs: 15_000, what: 'replayed callback' });
    assert.deepEqual(picky.calls[1]!.json, { station_id: STATION, driver_token: TOKEN, status: 'allowed' });

    // A second serve on the same port: exit 1 with a one-line reason.
    const clash = await runBinary(bin, ['serve', '--port', String(port), '--db', join(dir, 'other.db')], { cwd: dir, env });
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /already in use/);

    const exit = await server.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, server.stderr());
    assert.ok(server.lines.some((l) => l.msg === 'stopped'));
  });

  test('a database from a newer chargegate is refused untouched (exit 1)', async () => {
    const db = join(dir, 'newer.db');
    assert.equal((await runBinary(bin, ['stations', 'add', '123e4567-e89b-12d3-a456-426614174000', '--db', db], { cwd: dir, env })).code, 0);
    const Database = (await import('better-sqlite3')).default;
    const h = new Database(db);
    h.prepare("INSERT INTO schema_migrations VALUES (9999, 'future', 'x')").run();
    h.close();
    const before = readFileSync(db);
    const r = await runBinary(bin, ['serve', '--db', db], { cwd: dir, env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /schema version 9999 is newer/);
    assert.ok(readFileSync(db).equals(before), 'file untouched');
  });

  test('without CHARGEGATE_CACHE_DIR the files go next to the database', async () => {
    const { CHARGEGATE_CACHE_DIR: _unused, ...rest } = env;
    const db = join(dir, 'site2', 'cg.db');
    // A command that writes: one that only reads refuses a missing file before unpacking.
    const r = await runBinary(bin, ['stations', 'add', '123e4567-e89b-12d3-a456-426614174000', '--db', db], { cwd: dir, env: rest });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readdirSync(join(dir, 'site2', '.chargegate-cache')).some((f) => f.endsWith('.node')));
  });

  test('a copy that lost the files appended after the executable (stripped, cut short): one line, exit 1', async () => {
    // build.mjs appends the bundle, its code cache and the unpacked files (src/runtime/payload.ts).
    const cut = join(dir, 'cut-chargegate');
    const whole = readFileSync(bin);
    writeFileSync(cut, whole.subarray(0, whole.length - 100));
    chmodSync(cut, 0o755);
    const r = await runBinary(cut, ['--version'], { cwd: dir, env });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^chargegate: cannot start: .*cut-chargegate: the files built into the executable are missing or from another build \(was it stripped or modified after the build\?\)\n$/);
    rmSync(cut);
  });

  test('a cache folder that cannot be created: exit 1 and a message naming CHARGEGATE_CACHE_DIR', async () => {
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, '');
    const r = await runBinary(bin, ['acl', 'add', 'ABCD-efgh1234567890_~valid.token', '--db', join(dir, 'site3', 'cg.db')], { cwd: dir, env: { ...env, CHARGEGATE_CACHE_DIR: join(file, 'cache') } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /CHARGEGATE_CACHE_DIR/);
    assert.ok(!existsSync(join(dir, 'site3', 'cg.db')));
  });
});
