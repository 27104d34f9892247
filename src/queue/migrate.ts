import { ChargegateError } from '../core/errors.ts';
import { originOf } from '../core/origin.ts';
import type { Db } from './db.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';

/** The schema version recorded in the file (0 for a new file). */
export function schemaVersion(db: Db): number {
  const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'").get();
  if (!hasTable) return 0;
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}

/** Throws for a file from a newer chargegate: running old code on it could corrupt it. */
export function refuseNewer(version: number): void {
  if (version > SCHEMA_VERSION) {
    throw new ChargegateError(
      'CG_ERR_SCHEMA_NEWER',
      `database schema version ${version} is newer than this chargegate supports (${SCHEMA_VERSION}); upgrade chargegate`,
    );
  }
}

/**
 * Applies the migrations the file lacks, all in one IMMEDIATE transaction: a new file is
 * made with one commit (one fsync instead of one per migration: a few ms of every first
 * start), an upgrade is all or nothing, and a second process starting at the same moment
 * waits instead of applying twice. A file from a newer chargegate is refused untouched:
 * running old code on it could corrupt it.
 */
export function migrate(db: Db, now: () => number = Date.now): { from: number; to: number } {
  const from = schemaVersion(db);
  refuseNewer(from);
  // Migration 8 fills charging_requests.origin with the same parser the service uses.
  db.function('cg_origin', { deterministic: true }, (url: unknown) => originOf(String(url)));
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`);
  const insert = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const apply = db.transaction(() => {
    // Read again inside the lock: another process may have migrated meanwhile.
    const at = schemaVersion(db);
    refuseNewer(at);
    const appliedAt = new Date(now()).toISOString();
    for (const m of MIGRATIONS) {
      if (at >= m.version) continue;
      db.exec(m.sql);
      insert.run(m.version, m.name, appliedAt);
    }
  });
  apply.immediate();
  return { from, to: SCHEMA_VERSION };
}
