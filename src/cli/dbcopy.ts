import type { Command, Option } from 'commander';
import { ChargegateError } from '../core/errors.ts';
import { postgresUrl } from '../config.ts';
import type { Db } from '../queue/db.ts';
import { tryLock, type InstanceLock } from '../queue/lock.ts';
import { usageError } from './usage.ts';

// `chargegate db copy --to postgres://…` (issue 12): a SQLite file's content into
// PostgreSQL. One read transaction on the file gives one consistent snapshot; rows go
// into PostgreSQL in batches, one INSERT … ON CONFLICT DO NOTHING each (its own
// transaction), so a run cut anywhere leaves whole batches behind and the next run skips
// what is there and continues: nothing lost, nothing twice. A row already in the target
// is kept as it is (the target wins: a service there may have moved it on since).

export interface DbCopyDeps {
  err: (s: string) => void;
  out: (s: string) => void;
  dbOption: () => Option;
  dbPath: (dbFlag: string | undefined) => string;
  /** The file opened read-only (migrated first if older, as for any command). */
  openRead: (dbFlag: string | undefined) => Db;
  nativeBinding: () => string | undefined;
}

const DEFAULT_BATCH = 1000;

/** The target: the same check as DATABASE_URL's (src/config.ts), as a usage error. */
export function checkPgUrl(url: string): string {
  try {
    return postgresUrl(url);
  } catch (err) {
    throw usageError(`invalid --to: ${(err as Error).message}`);
  }
}

function checkBatch(s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 100_000) {
    throw usageError(`invalid --batch-size ${JSON.stringify(s)}: expected an integer from 1 to 100000`);
  }
  return n;
}

export function addDbCommands(program: Command, deps: DbCopyDeps): Command[] {
  const db = program.command('db').description('the database as a whole');
  db.command('copy')
    .description('copy the SQLite file (ACL, groups, stations, API keys, open requests, history) into PostgreSQL')
    .requiredOption('--to <url>', 'the PostgreSQL database (migrated first): postgres://user[:pw]@host[:port]/db')
    .option('--live', 'copy even while a service holds the file (what it accepts later is not copied)', false)
    .option('--batch-size <n>', 'rows per INSERT (each its own transaction)', String(DEFAULT_BATCH))
    .addOption(deps.dbOption())
    .action(async (o: { to: string; live: boolean; batchSize: string; db?: string }) => {
      const url = checkPgUrl(o.to);
      const batch = checkBatch(o.batchSize);
      const path = deps.dbPath(o.db);
      const file = deps.openRead(o.db);
      let lock: InstanceLock | null = null;
      try {
        // Held for the copy: no service starts on the file and accepts what the copy misses.
        lock = tryLock(path, { waitMs: 0, nativeBinding: deps.nativeBinding() });
        if (!lock && !o.live) {
          throw new ChargegateError(
            'CG_ERR_DB_UNAVAILABLE',
            `a chargegate service (or command) holds ${path}: stop it first, so that every request it accepted ` +
              'is copied; ' +
              '--live copies a snapshot anyway (requests accepted after it are not copied)',
          );
        }
        // Loaded here: the other commands never need the PostgreSQL client.
        const { copyInto } = await import('./dbcopyrun.ts');
        await copyInto(file, url, { batch, err: deps.err, out: deps.out, live: !lock });
      } finally {
        lock?.release();
        file.close();
      }
    });
  return [db, ...db.commands];
}
