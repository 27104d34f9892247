import type { Sql } from 'postgres';
import { ChargegateError } from '../../core/errors.ts';
import { PG_MIGRATIONS } from './schema.ts';

// Migrations under a transaction-scoped advisory lock: instances starting together take
// turns, the first applies what is missing, the others find it applied. A database from a
// newer chargegate is refused unchanged, as with SQLite.

/** Key of the advisory lock migrations hold (any constant both sides agree on). */
const MIGRATION_LOCK = 0x63670001;

export const PG_SCHEMA_VERSION = PG_MIGRATIONS[PG_MIGRATIONS.length - 1]!.version;

export async function migratePg(sql: Sql): Promise<{ from: number; to: number }> {
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)`;
    const [row] = await tx<Array<{ v: number | null }>>`SELECT MAX(version) AS v FROM schema_migrations`;
    const from = row?.v ?? 0;
    if (from > PG_SCHEMA_VERSION) {
      throw new ChargegateError(
        'CG_ERR_DB_UNAVAILABLE',
        `the database has schema version ${from}, newer than this chargegate's ${PG_SCHEMA_VERSION}: run the newer chargegate`,
      );
    }
    for (const m of PG_MIGRATIONS) {
      if (m.version <= from) continue;
      await tx.unsafe(m.sql);
      await tx`INSERT INTO schema_migrations (version, name, applied_at) VALUES (${m.version}, ${m.name}, ${new Date().toISOString()})`;
    }
    return { from, to: PG_SCHEMA_VERSION };
  });
}
