import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { originOf } from '../../src/core/origin.ts';
import { openDb } from '../../src/queue/db.ts';
import { tryLock } from '../../src/queue/lock.ts';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/queue/schema.ts';
import { cli } from '../support/cli.ts';
import { exitWithin, runCli, startService } from '../support/process.ts';
import { tempDir } from '../support/tmp.ts';

// The CLI and the schema (README "CLI"): a command never migrates the file under a running
// service, and never touches a file from a newer chargegate.

const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const versionOf = (path: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT MAX(version) FROM schema_migrations').pluck().get() as number;
  } finally {
    db.close();
  }
};

/** A file as the previous chargegate release left it: every migration but the last. */
function olderFile(path: string): void {
  const db = openDb(path, { busyTimeoutMs: 1000 });
  // As migrate() does: migration 8 fills the origin column with the service's parser.
  db.function('cg_origin', { deterministic: true }, (url: unknown) => originOf(String(url)));
  db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT');
  for (const m of MIGRATIONS.slice(0, -1)) {
    db.exec(m.sql);
    db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, '2026-01-01T00:00:00Z');
  }
  db.close();
}

/** A file from a newer chargegate, in WAL or rollback-journal mode. */
function newerFile(path: string, mode: 'wal' | 'delete'): void {
  olderFile(path);
  const db = new Database(path);
  db.prepare("INSERT INTO schema_migrations VALUES (999, 'from the future', '2030-01-01T00:00:00Z')").run();
  db.pragma(`journal_mode = ${mode}`);
  db.close();
}

describe('CLI and schema versions', () => {
  it('refuses a file from a newer chargegate with one line and exit 1, the file byte-for-byte unchanged', async (t) => {
    const dir = tempDir(t);
    for (const mode of ['wal', 'delete'] as const) {
      const path = join(dir, `newer-${mode}.db`);
      newerFile(path, mode);
      const before = sha(path);
      for (const args of [['acl', 'list'], ['acl', 'add', TOKEN], ['stations', 'list'], ['requests', 'list']]) {
        const r = await cli([...args, '--db', path]);
        assert.equal(r.code, 1, `${mode} ${args.join(' ')}: ${r.err}`);
        assert.equal(r.err, `chargegate: database schema version 999 is newer than this chargegate supports (${SCHEMA_VERSION}); upgrade chargegate\n`);
        assert.equal(sha(path), before, `${mode} ${args.join(' ')}: the file is untouched`);
        assert.ok(!existsSync(`${path}-wal`) || readFileSync(`${path}-wal`).length === 0, `${mode}: no WAL left beside it`);
      }
    }
  });

  it('migrates an older file when no service holds it, and leaves the lock free', async (t) => {
    const path = join(tempDir(t), 'older.db');
    olderFile(path);
    const r = await cli(['acl', 'add', TOKEN, '--db', path]);
    assert.equal(r.code, 0, r.err);
    assert.equal(versionOf(path), SCHEMA_VERSION);
    const lock = tryLock(path, { waitMs: 0 });
    assert.ok(lock, 'the command gave the lock back');
    lock.release();
  });

  it('refuses an older file while a service holds it, telling the operator to restart the service; nothing changes', async (t) => {
    const path = join(tempDir(t), 'older.db');
    olderFile(path);
    const db = new Database(path);
    db.prepare('INSERT INTO service_instance (id, pid, host, started_at, heartbeat_at) VALUES (1, 4242, ?, 0, 0)').run(hostname());
    db.close();
    const lock = tryLock(path, { waitMs: 0 }); // the running (older) service
    assert.ok(lock);
    t.after(() => lock.release());
    const r = await cli(['acl', 'add', TOKEN, '--db', path]);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, new RegExp(`^chargegate: the database has schema version ${SCHEMA_VERSION - 1} and this chargegate needs ${SCHEMA_VERSION}, but a chargegate service is using it \\(pid 4242 on ${hostname()}, since 1970-01-01T00:00:00\\.000Z\\): restart the service with this chargegate`));
    assert.equal(r.err.trim().split('\n').length, 1);
    assert.equal(versionOf(path), SCHEMA_VERSION - 1, 'not migrated');
    const acl = new Database(path, { readonly: true });
    assert.equal(acl.prepare('SELECT COUNT(*) FROM acl').pluck().get(), 0, 'the command did nothing');
    acl.close();
  });

  it('as real processes: refused under a running service that serves an older schema; an older file with no service is migrated', { timeout: 60_000 }, async (t) => {
    const svc = await startService(t);
    // What a newer binary's command meets beside the running older service.
    const admin = new Database(svc.dbPath);
    admin.prepare('DELETE FROM schema_migrations WHERE version = ?').run(SCHEMA_VERSION);
    admin.close();
    const refused = await runCli(t, ['acl', 'list', '--db', svc.dbPath]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`service is using it \\(pid ${svc.pid} on ${hostname()}, since .*\\): restart the service with this chargegate`));
    assert.equal(versionOf(svc.dbPath), SCHEMA_VERSION - 1, 'not migrated under the service');
    assert.equal((await fetch(`${svc.base}/health/ready`)).status, 200, 'the service serves on');
    svc.kill('SIGTERM');
    assert.deepEqual(await exitWithin(svc, 15_000), { code: 0, signal: null });

    const older = join(tempDir(t), 'older.db');
    olderFile(older);
    const ok = await runCli(t, ['acl', 'list', '--json', '--db', older]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, '[]\n');
    assert.equal(versionOf(older), SCHEMA_VERSION, 'migrated');
    const next = await startService(t, { dbPath: older });
    next.kill('SIGTERM');
    assert.deepEqual(await exitWithin(next, 15_000), { code: 0, signal: null }, 'a service starts on it afterwards (the lock was given back)');
  });
});
