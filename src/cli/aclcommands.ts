import { type Command, Option } from 'commander';
import type { Db } from '../queue/db.ts';
import { aclEffective, checkExpiry, checkStation, listVersion } from './acl.ts';
import { checkGroupName, groupAdd, groupList, groupRemove } from './groups.ts';
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
}


/** Adds `group`, `effective` and `list-version` under `acl` (`unknown`: src/cli/unknowncommand.ts); returns the commands made. */
export function addAclCommands(acl: Command, ctx: CommandContext): Command[] {
  const { out, err, withDb, dbOption } = ctx;
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
    .action((name: string, o: { station: string[]; validFrom?: string; expires?: string; blocked: boolean; allowOffline: boolean; note?: string; db?: string }) => {
      const entry = {
        name: checkGroupName(name),
        stations: o.station.map(checkStation),
        valid_from: o.validFrom ? checkExpiry(o.validFrom, 'valid-from') : null,
        expires_at: o.expires ? checkExpiry(o.expires) : null,
        blocked: o.blocked,
        allow_offline: o.allowOffline,
        note: o.note ?? null,
      };
      withDb(o.db, (db) => groupAdd(db, entry));
      out(`acl: group ${entry.name} saved\n`);
    });
  group
    .command('remove <name>')
    .description('remove a group that has no tokens')
    .addOption(dbOption())
    .action((name: string, o: { db?: string }) => {
      const r = withDb(o.db, (db) => groupRemove(db, name));
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
    .action((o: { json: boolean; db?: string }) => {
      const rows = withDb(o.db, (db) => groupList(db), 'read');
      out(o.json ? `${JSON.stringify(rows)}\n` : `${table(rows.map((r) => ({ ...r, stations: scopeText(r) })), ['name', 'tokens', 'stations', 'blocked', 'valid_from', 'expires_at', 'allow_offline', 'note'])}\n`);
    });

  const effective = acl
    .command('effective')
    .description("each token's effective state now, group rules applied (tokens masked unless --full)")
    .option('--json', 'JSON output for scripts', false)
    .option('--full', 'show full tokens', false)
    .addOption(dbOption())
    .action((o: { json: boolean; full: boolean; db?: string }) => {
      const rows = withDb(o.db, (db) => aclEffective(db, o.full), 'read');
      const cols = ['token', 'group', 'state', 'stations', 'valid_from', 'expires_at', 'allow_offline', 'token_type', 'note'];
      out(o.json ? `${JSON.stringify(rows)}\n` : `${table(rows.map((r) => ({ ...r, stations: scopeText(r) })), cols)}\n`);
    });

  const version = acl
    .command('list-version')
    .description('the version of the last versioned import (0 before any)')
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .action((o: { json: boolean; db?: string }) => {
      const v = withDb(o.db, (db) => listVersion(db), 'read');
      out(o.json ? `${JSON.stringify(v)}\n` : `acl: list version ${v.version}${v.update_type ? ` (${v.update_type} update at ${v.updated_at})` : ''}\n`);
    });

  return [group, ...group.commands, effective, version];
}
