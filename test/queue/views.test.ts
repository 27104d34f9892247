import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { openDb } from '../../src/queue/db.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { tempDir } from '../support/tmp.ts';

// README "The database": every table with integer-ms timestamps has a view that shows them
// as ISO-8601 text, so an admin with the sqlite3 CLI never converts by hand.

it('every table with an integer-ms *_at column has a view reading it as ISO text', (t) => {
  const db = openDb(join(tempDir(t), 'v.db'), { busyTimeoutMs: 1000 });
  t.after(() => db.close());
  migrate(db);
  const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").pluck().all() as string[];
  const views = db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'view'").pluck().all() as string[];
  const missing: string[] = [];
  for (const table of tables) {
    const cols = (db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string; type: string }>)
      .filter((c) => c.type === 'INTEGER' && c.name.endsWith('_at') && c.name !== 'heartbeat_at');
    if (cols.length === 0) continue;
    const covered = views.some((v) => new RegExp(`FROM\\s+${table}\\b`).test(v) && /strftime/.test(v));
    if (!covered) missing.push(`${table} (${cols.map((c) => c.name).join(', ')})`);
  }
  assert.deepEqual(missing, []);
});

it('service_instance_readable and idempotency_keys_readable show ISO times', (t) => {
  const db = openDb(join(tempDir(t), 'w.db'), { busyTimeoutMs: 1000 });
  t.after(() => db.close());
  migrate(db);
  db.prepare("INSERT INTO service_instance (id, pid, host, started_at, heartbeat_at) VALUES (1, 42, 'box', 1764460800000, 1764460800000)").run();
  db.prepare("INSERT INTO idempotency_keys (key, body_hash, request_id, created_at) VALUES ('k1', 'h', 'r', 1764460800123)").run();
  assert.deepEqual(db.prepare('SELECT * FROM service_instance_readable').get(), { pid: 42, host: 'box', started_at: '2025-11-30T00:00:00.000Z' });
  assert.deepEqual(db.prepare('SELECT * FROM idempotency_keys_readable').get(), { key: 'k1', body_hash: 'h', request_id: 'r', created_at: '2025-11-30T00:00:00.123Z' });
});
