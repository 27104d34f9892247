import { type Command, Option } from 'commander';
import type { Db } from '../queue/db.ts';
import { checkExpiry, checkStation } from './acl.ts';
import type { AclStore } from './aclstore.ts';
import type { EngineFlags } from './engine.ts';
import { databaseUrlOption } from './engine.ts';
import { checkGroupName } from './groups.ts';
import { scopeText } from './scope.ts';
import { collect, table } from './usage.ts';

// The ACL commands of the authorization chain: groups, each token's effective state, the
// list version, and the unknown tokens seen (README "Authorization chain", "CLI").

export interface CommandContext {
  out: (s: string) => void;
  err: (s: string) => void;
  /** 'read' for commands that only read: a missing file is refused, the file opened read-only. */
  withDb: <T>(dbFlag: string | undefined, fn: (db: Db) => T, access?: 'read' | 'write') => T;
  dbOption: () => Option;
  /** The ACL store of the database a command's --db / --database-url names (PostgreSQL or the SQLite file). */
  withAclStore: <T>(o: EngineFlags, fn: (s: AclStore) => Promise<T>, access?: 'read' | 'write') => Promise<T>;
}


/** Adds `group`, `effective` and `list-version` under `acl` (`unknown`: src/cli/unknowncommand.ts); returns the commands made. */
export function addAclCommands(acl: Command, ctx: CommandContext): Command[] {
  const { out, err, withDb, dbOption, withAclStore } = ctx;
  const group = acl.command('group').description('manage token groups (a blocked or expired group stops its tokens)');
  group
    .command('add <name>')
    .description('add or replace a group')
    .option('--station <uuid>', 'its tokens charge only at this station (repeatable; none = every station)', collect, [])
    .option('--valid-from <iso>', 'its tokens charge from then on, ISO-8601')
    .option('--expires <iso>', 'its tokens stop charging then, ISO-8601')
    .option('--blocked', 'every token of the group is blocked', false)
    .option('--allow-offline', 'its tokens: ask the upstream first, allowed when it cannot answer', false)
    .option('--note <text>', 'free text for admins')
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (name: string, o: EngineFlags & {
      station: string[]; validFrom?: string; expires?: string; blocked: boolean; allowOffline: boolean; note?: string;
    }) => {
      const entry = {
        name: checkGroupName(name),
        stations: o.station.map(checkStation),
        valid_from: o.validFrom ? checkExpiry(o.validFrom, 'valid-from') : null,
        expires_at: o.expires ? checkExpiry(o.expires) : null,
        blocked: o.blocked,
        allow_offline: o.allowOffline,
        note: o.note ?? null,
      };
      await withAclStore(o, (s) => s.groupAdd(entry));
      out(`acl: group ${entry.name} saved\n`);
    });
  group
    .command('remove <name>')
    .description('remove a group that has no tokens')
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (name: string, o: EngineFlags) => {
      const r = await withAclStore(o, (s) => s.groupRemove(name));
      if (r.tokens > 0) {
        err(`acl: group ${name} still has ${r.tokens} token(s); move or remove them first\n`);
        process.exitCode = 1;
      } else if (!r.removed) {
        err('acl: no such group\n');
        process.exitCode = 1;
      } else out('acl: group removed\n');
    });
  group
    .command('list')
    .description('list groups with their token counts')
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { json: boolean }) => {
      const rows = await withAclStore(o, (s) => s.groupList(), 'read');
      out(o.json ? `${JSON.stringify(rows)}\n` : `${table(rows.map((r) => ({ ...r, stations: scopeText(r) })), ['name', 'tokens', 'stations', 'blocked', 'valid_from', 'expires_at', 'allow_offline', 'note'])}\n`);
    });

  const effective = acl
    .command('effective')
    .description("each token's effective state now, group rules applied (tokens masked unless --full)")
    .option('--json', 'JSON output for scripts', false)
    .option('--full', 'show full tokens', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { json: boolean; full: boolean }) => {
      const rows = await withAclStore(o, (s) => s.effective(o.full), 'read');
      const cols = ['token', 'group', 'state', 'stations', 'valid_from', 'expires_at', 'allow_offline', 'token_type', 'note'];
      out(o.json ? `${JSON.stringify(rows)}\n` : `${table(rows.map((r) => ({ ...r, stations: scopeText(r) })), cols)}\n`);
    });

  const version = acl
    .command('list-version')
    .description('the version of the last versioned import (0 before any)')
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { json: boolean }) => {
      const v = await withAclStore(o, (s) => s.listVersion(), 'read');
      out(o.json ? `${JSON.stringify(v)}\n` : `acl: list version ${v.version}${v.update_type ? ` (${v.update_type} update at ${v.updated_at})` : ''}\n`);
    });

  return [group, ...group.commands, effective, version];
}
