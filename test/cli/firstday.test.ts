import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { cli } from '../support/cli.ts';
import { tempDir } from '../support/tmp.ts';

// Issue 15: what a new operator meets on the first day. Every message is one line that
// names what is wrong, exit codes follow the CLI's rule (2 usage, 1 failed), and nothing
// is created by a command that only reads or by a start that fails.

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const T1 = 'ABCD-efgh1234567890_~valid.token';

const oneLine = (s: string) => s.trim().split('\n').length === 1;

describe('first day: settings', () => {
  it('a bad HOST or --host is one line naming it, exit 2', async (t) => {
    const db = join(tempDir(t), 'h.db');
    for (const [args, env, name] of [
      [['serve'], { HOST: '999.0.0.1' }, 'HOST'],
      [['serve', '--host', 'a b'], {}, '--host'],
      [['serve'], { HOST: 'bad_name!' }, 'HOST'],
    ] as const) {
      const r = await cli([...args, '--db', db], env);
      assert.equal(r.code, 2, r.err);
      assert.ok(oneLine(r.err), r.err);
      assert.match(r.err, new RegExp(`invalid ${name}=`));
      assert.ok(!r.err.includes('\u001b['), 'no colour codes');
    }
    assert.ok(!existsSync(db), 'nothing created');
  });

  it('a name that does not resolve is one line naming HOST, exit 2, and leaves no database', async (t) => {
    const dir = tempDir(t);
    const r = await cli(['serve', '--port', '0', '--db', join(dir, 'new', 'h.db')], { HOST: 'no-such-host.invalid', LOG_LEVEL: 'silent' });
    assert.equal(r.code, 2, r.err);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /invalid HOST="no-such-host\.invalid": the name does not resolve/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('an address that is not this machine\'s is one line naming HOST, exit 2, and leaves no database', async (t) => {
    const dir = tempDir(t);
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a real interface.
    const r = await cli(['serve', '--port', '0', '--db', join(dir, 'new', 'h.db')], { HOST: '192.0.2.1', LOG_LEVEL: 'silent' });
    assert.equal(r.code, 2, r.err);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /invalid HOST="192\.0\.2\.1": not an address of this machine/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('a start that fails (port taken) leaves no new database behind; an existing one stays', async (t) => {
    const dir = tempDir(t);
    const taken = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => taken.once('listening', r));
    t.after(() => taken.close());
    const port = String((taken.address() as { port: number }).port);
    const r = await cli(['serve', '--host', '127.0.0.1', '--port', port, '--db', join(dir, 'sub', 'x.db')], { LOG_LEVEL: 'silent' });
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`port ${port} on 127.0.0.1 is already in use`));
    assert.deepEqual(readdirSync(dir), [], 'neither the file nor the folder made for it');
    const kept = join(dir, 'kept.db');
    assert.equal((await cli(['stations', 'add', S1, '--db', kept])).code, 0);
    assert.equal((await cli(['serve', '--host', '127.0.0.1', '--port', port, '--db', kept], { LOG_LEVEL: 'silent' })).code, 1);
    assert.equal(JSON.parse((await cli(['stations', 'list', '--json', '--db', kept])).out).length, 1, 'an existing database is left alone');
  });

  it('DB_PATH naming a folder, or a path through a file, is one line naming the path', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'f');
    writeFileSync(file, '');
    const folder = await cli(['serve', '--port', '0'], { DB_PATH: dir, LOG_LEVEL: 'silent' });
    assert.equal(folder.code, 1);
    assert.ok(oneLine(folder.err), folder.err);
    assert.match(folder.err, /it is a folder, not a file/);
    assert.ok(!folder.err.includes('EISDIR'));
    const through = await cli(['serve', '--port', '0', '--db', join(file, 'x.db')], { LOG_LEVEL: 'silent' });
    assert.equal(through.code, 1);
    assert.match(through.err, /cannot create the folder .*f for the database/);
    assert.ok(!/ENOTDIR|lstat|mkdir/.test(through.err), through.err);
  });

  it('a boolean setting is a switch: --x and --no-x, no value after it', async () => {
    // The switch is taken as a switch: parsing goes on to the next flag (whose bad value stops the start).
    for (const sw of ['--offline-allow-unknown', '--no-offline-allow-unknown']) {
      const r = await cli(['serve', sw, '--port', 'abc']);
      assert.equal(r.code, 2);
      assert.match(r.err, /invalid --port="abc"/, r.err);
    }
    const help = (await cli(['serve', '--help'])).out;
    assert.match(help, /--offline-allow-unknown\s+while the upstream cannot answer.*default false/);
    assert.match(help, /--no-offline-allow-unknown/);
    assert.match(help, /--port <value>\s+TCP port.*\(env PORT; default 8080\)/);
    assert.doesNotMatch(help, /overrides [A-Z_]+\n/);
  });
});

describe('first day: commands', () => {
  it('a mistyped top-level command is "unknown command" with the nearest one, exit 2', async () => {
    for (const [args, near] of [[['stat'], 'stats'], [['request', 'list'], 'requests'], [['--port', '1', 'stat'], 'stats']] as const) {
      const r = await cli([...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.err, new RegExp(`unknown command '${args.find((a) => a === 'stat' || a === 'request')}'`));
      assert.match(r.err, new RegExp(`Did you mean ${near}\\?`));
      assert.doesNotMatch(r.err, /too many arguments/);
    }
  });

  it('commands that only read refuse a missing file (exit 1, naming it) and create nothing', async (t) => {
    const dir = tempDir(t);
    const missing = join(dir, 'typo', 'nothere.db');
    for (const args of [['stats'], ['requests', 'list'], ['requests', 'show', '00000000-0000-4000-8000-000000000000'], ['acl', 'list'], ['stations', 'list'], ['receivers'], ['acl', 'group', 'list'], ['acl', 'unknown'], ['backup', join(dir, 'b.db')]]) {
      const r = await cli([...args, '--db', missing]);
      assert.equal(r.code, 1, args.join(' '));
      assert.ok(oneLine(r.err), r.err);
      assert.match(r.err, new RegExp(`no database at ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    }
    assert.deepEqual(readdirSync(dir), [], 'no folder, database or cache');
    // A command that writes still creates the database on first use.
    assert.equal((await cli(['stations', 'add', S1, '--db', missing])).code, 0);
    assert.ok(existsSync(missing));
  });

  it('commands that only read write nothing and leave no -wal/-shm files behind', async (t) => {
    const dir = tempDir(t);
    const db = join(dir, 'r.db');
    await cli(['acl', 'add', T1, '--db', db]);
    const before = readdirSync(dir).sort();
    const mtime = statSync(db).mtimeMs;
    for (const args of [['stats'], ['acl', 'list'], ['requests', 'list'], ['receivers'], ['stations', 'list']]) {
      assert.equal((await cli([...args, '--db', db])).code, 0, args.join(' '));
    }
    assert.equal(statSync(db).mtimeMs, mtime);
    assert.deepEqual(readdirSync(dir).sort(), before);
  });

  it('commands that only read work on a read-only mount', async (t) => {
    const src = tempDir(t);
    // Its own folder, unmounted before it is removed (tempDir's cleanup would meet a busy mount).
    const ro = mkdtempSync(join(tmpdir(), 'cg-ro-'));
    t.after(() => {
      spawnSync('umount', [ro]);
      rmSync(ro, { recursive: true, force: true });
    });
    await cli(['acl', 'add', T1, '--db', join(src, 'r.db')]);
    // A real read-only mount needs privileges; elsewhere the test above covers the open mode.
    const mount = (args: string[]) => spawnSync('mount', args, { stdio: 'ignore' }).status === 0;
    if (!mount(['--bind', src, ro])) return t.skip('cannot bind-mount here (needs root)');
    if (!mount(['-o', 'remount,ro,bind', ro])) return t.skip('cannot remount read-only here');
    const db = join(ro, 'r.db');
    for (const args of [['stats'], ['acl', 'list', '--json'], ['requests', 'list'], ['receivers'], ['stations', 'list']]) {
      const r = await cli([...args, '--db', db]);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    }
    assert.equal(JSON.parse((await cli(['acl', 'list', '--json', '--db', db])).out).length, 1);
    const write = await cli(['stations', 'add', S1, '--db', db]);
    assert.equal(write.code, 1, 'a write is refused with a reason');
    assert.ok(oneLine(write.err), write.err);
    assert.match(write.err, /read-only file system/);
  });

  it('requests show with a malformed id is a usage error saying it must be a UUID, as the API', async (t) => {
    const db = join(tempDir(t), 'q.db');
    await cli(['stations', 'add', S1, '--db', db]);
    const r = await cli(['requests', 'show', 'not-a-uuid', '--db', db]);
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid request id "not-a-uuid": must be a UUID/);
    const replay = await cli(['replay', 'not-a-uuid', '--db', db]);
    assert.equal(replay.code, 2);
    assert.match(replay.err, /invalid request id "not-a-uuid": must be a UUID/);
    const none = await cli(['requests', 'show', '00000000-0000-4000-8000-000000000000', '--db', db]);
    assert.equal(none.code, 1);
    assert.match(none.err, /no request/);
  });

  it('replay --since takes ISO-8601 or an age, and says so for anything else', async (t) => {
    const db = join(tempDir(t), 'p.db');
    await cli(['stations', 'add', S1, '--db', db]);
    for (const since of ['2026-11-29', '2026-11-29T08:00:00Z', '30m', '24h', '7d']) {
      const r = await cli(['replay', '--failed', '--since', since, '--db', db]);
      assert.equal(r.code, 0, `${since}: ${r.err}`);
      assert.equal(r.out, 'replay: 0 re-queued\n');
    }
    const bad = await cli(['replay', '--failed', '--since', 'yesterday', '--db', db]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /invalid --since "yesterday": expected an ISO-8601 time .* or an age \(30m, 24h, 7d\)/);
    assert.doesNotMatch(bad.err, /expiry/);
  });

  it('acl import of a missing file or a folder says so in words', async (t) => {
    const dir = tempDir(t);
    const db = join(dir, 'i.db');
    const missing = await cli(['acl', 'import', join(dir, 'nope.csv'), '--db', db]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /cannot read .*nope\.csv: no such file or folder/);
    const folder = await cli(['acl', 'import', dir, '--db', db]);
    assert.match(folder.err, /it is a folder, not a file/);
    assert.doesNotMatch(missing.err + folder.err, /ENOENT|EISDIR/);
    assert.ok(!existsSync(db), 'no database created for an import that cannot start');
  });

  it('backup refuses the database itself (also through a link) and an existing file unless --force', async (t) => {
    const dir = tempDir(t);
    const db = join(dir, 'live.db');
    await cli(['stations', 'add', S1, '--db', db]);
    const link = join(dir, 'link.db');
    symlinkSync(db, link);
    for (const target of [db, link, join(dir, '.', 'live.db')]) {
      const r = await cli(['backup', target, '--force', '--db', db]);
      assert.equal(r.code, 2, target);
      assert.match(r.err, /is the database being backed up/);
    }
    const copy = join(dir, 'copy.db');
    assert.equal((await cli(['backup', copy, '--db', db])).code, 0);
    const again = await cli(['backup', copy, '--db', db]);
    assert.equal(again.code, 2);
    assert.match(again.err, /exists; --force replaces it/);
    assert.equal((await cli(['backup', copy, '--force', '--db', db])).code, 0);
    const b = new Database(copy, { readonly: true });
    t.after(() => b.close());
    assert.equal(b.prepare('SELECT COUNT(*) FROM stations').pluck().get(), 1);
    assert.equal(JSON.parse((await cli(['stations', 'list', '--json', '--db', db])).out).length, 1, 'the source is intact');
  });
});
