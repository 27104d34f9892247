import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { openDb } from '../../src/queue/db.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { createProbe } from '../../src/queue/probe.ts';
import { tempDir } from '../support/tmp.ts';

describe('database probe', () => {
  it('sees a held write lock and a read-only connection, and writes nothing', (t) => {
    const path = join(tempDir(t), 'p.db');
    const db = openDb(path, { busyTimeoutMs: 50 });
    migrate(db);
    t.after(() => db.close());
    db.prepare("INSERT INTO stations (station_id) VALUES ('s')").run(); // the WAL holds a commit
    const probe = createProbe(db);
    const files = () => [path, `${path}-wal`].map((f) => `${statSync(f).size}@${statSync(f).mtimeMs}`);
    const before = files();
    for (let i = 0; i < 100; i++) probe();
    assert.deepEqual(files(), before, '100 probes changed no file');

    const admin = new Database(path);
    t.after(() => admin.close());
    admin.exec('BEGIN IMMEDIATE');
    assert.throws(probe, /database is locked/);
    admin.exec('COMMIT');
    probe();

    db.pragma('query_only = ON');
    assert.throws(probe, /readonly/);
    db.pragma('query_only = OFF');
    probe();
    assert.equal(db.inTransaction, false, 'nothing left open');
  });
});
