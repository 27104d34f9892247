import { Option } from 'commander';
import type { Sql } from 'postgres';
import { postgresUrl } from '../config.ts';
import { ChargegateError } from '../core/errors.ts';
import { usageError } from './usage.ts';

// Which database a command works on (issue 12): PostgreSQL when --database-url or
// DATABASE_URL names one, else the SQLite file (--db / DB_PATH), as for `serve`. The one
// place the CLI decides it; a command asks `cliEngine` and gets one or the other.

/** A command's database options: the SQLite file (--db) or PostgreSQL (--database-url). */
export interface EngineFlags {
  db?: string;
  databaseUrl?: string;
}

export type CliEngine = { kind: 'sqlite'; dbFlag: string | undefined } | { kind: 'postgres'; url: string };

/** The option every command that touches the database takes, beside --db. */
export function databaseUrlOption(): Option {
  return new Option('--database-url <url>', 'PostgreSQL instead of the SQLite file (default: $DATABASE_URL)');
}

/**
 * The engine for a command's options. Both --db and --database-url on one command is a
 * usage error (which one did the admin mean?); --db beats DATABASE_URL from the
 * environment, so a file can still be inspected on a box set up for PostgreSQL.
 */
export function cliEngine(env: Record<string, string | undefined>, o: EngineFlags): CliEngine {
  if (o.db !== undefined && o.databaseUrl !== undefined) throw usageError('--db and --database-url name two databases: give one');
  if (o.databaseUrl !== undefined) return { kind: 'postgres', url: checkUrl(o.databaseUrl, '--database-url') };
  if (o.db !== undefined) return { kind: 'sqlite', dbFlag: o.db };
  const fromEnv = env.DATABASE_URL;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return { kind: 'postgres', url: checkUrl(fromEnv, 'DATABASE_URL') };
  return { kind: 'sqlite', dbFlag: undefined };
}

function checkUrl(raw: string, name: string): string {
  try {
    return postgresUrl(raw);
  } catch (err) {
    throw usageError(`invalid ${name}: ${(err as Error).message}`);
  }
}

/**
 * Runs `fn` on a short-lived connection to the database, migrated first as `serve` would
 * (a newer schema is refused unchanged). The client is loaded here: SQLite-only commands
 * never load it. A server that cannot be reached is an operation failure (exit 1) naming
 * the URL without its password.
 */
export async function withPg<T>(url: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
  const [{ connectPg, redactUrl }, { migratePg }] = await Promise.all([
    import('../queue/pg/connect.ts'),
    import('../queue/pg/migrate.ts'),
  ]);
  const sql = connectPg(url, { max: 2, name: 'chargegate-cli' });
  try {
    try {
      await migratePg(sql);
    } catch (err) {
      if (err instanceof ChargegateError) throw err;
      throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot use PostgreSQL at ${redactUrl(url)}: ${(err as Error).message}`);
    }
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
