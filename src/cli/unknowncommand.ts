import type { Command, Option } from 'commander';
import type { AdminStore } from './admin.ts';
import { checkStation } from './acl.ts';
import { databaseUrlOption, type EngineFlags } from './engine.ts';
import { table, usageError } from './usage.ts';

// `acl unknown`: the tokens refused as unknown (src/cli/unknown.ts says what is kept), on
// the SQLite file or PostgreSQL through the admin store, like `requests` and `keys`.

export interface UnknownContext {
  out: (s: string) => void;
  dbOption: () => Option;
  withAdmin: <T>(o: EngineFlags, fn: (a: AdminStore) => Promise<T>, access?: 'read' | 'write') => Promise<T>;
}

/** Adds `unknown` under `acl`; returns it. */
export function addUnknownCommand(acl: Command, ctx: UnknownContext): Command {
  const { out, dbOption, withAdmin } = ctx;
  return acl
    .command('unknown')
    .description('tokens refused as unknown, per station (hashed and masked), newest first')
    .option('--station <uuid>', 'only this station')
    .option('--limit <n>', 'at most this many rows', '100')
    .option('--clear', 'forget every sighting', false)
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { station?: string; limit: string; clear: boolean; json: boolean }) => {
      if (o.clear) {
        const n = await withAdmin(o, (a) => a.unknownClear());
        out(`acl: forgot ${n} unknown-token sighting(s)\n`);
        return;
      }
      const limit = Number(o.limit);
      if (!/^\d+$/.test(o.limit) || limit < 1 || limit > 100_000) throw usageError(`invalid --limit ${JSON.stringify(o.limit)}: expected an integer from 1 to 100000`);
      const station = o.station === undefined ? undefined : checkStation(o.station);
      const rows = await withAdmin(o, (a) => a.unknownList({ limit, station }), 'read');
      if (o.json) out(`${JSON.stringify(rows)}\n`);
      else out(`${table(rows.map((r) => ({ ...r, token_hash: r.token_hash.slice(0, 12) })) as never, ['token', 'token_hash', 'station_id', 'count', 'last_seen_at', 'last_decision'])}\n`);
    });
}
