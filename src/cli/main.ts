import { accessSync, constants, statSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { CONFIG_VARIABLES, dbPathFrom, loadConfig } from '../config.ts';
import { ChargegateError, isChargegateError } from '../core/errors.ts';
import { fsReason } from '../core/fsutil.ts';
import { preflight, refuseNewerFile } from '../queue/dbfile.ts';
import { openDb, openReadOnly, type Db } from '../queue/db.ts';
import { refuseNewer, schemaVersion } from '../queue/migrate.ts';
import { SCHEMA_VERSION } from '../queue/schema.ts';
import { prepareForCommand } from '../queue/instance.ts';
import { runtimePaths } from '../runtime/paths.ts';
import { checkExpiry, checkSince, checkListVersion, checkStation, checkToken, checkTokenType } from './acl.ts';
import { TOKEN_TYPES } from '../core/validate.ts';
import { addAclCommands } from './aclcommands.ts';
import { sqliteAclStore, type AclStore } from './aclstore.ts';
import { checkGroupName } from './groups.ts';
import { sqliteAdmin, type AdminStore } from './admin.ts';
import { cliEngine, databaseUrlOption, withPg, type EngineFlags } from './engine.ts';
import { addOpsCommands } from './opscommands.ts';
import { addUnknownCommand } from './unknowncommand.ts';
import { addDbCommands } from './dbcopy.ts';
import { scopeText } from './scope.ts';
import { collect, table, usageError } from './usage.ts';

// The command line (SPEC §6). Exit codes: 0 done, 1 the operation failed, 2 bad usage.

export interface CliIo {
  env: Record<string, string | undefined>;
  out: (s: string) => void;
  err: (s: string) => void;
}

const CLI_BUSY_TIMEOUT_MS = 5000;

function dbPathOf(io: CliIo, dbFlag: string | undefined): string {
  return dbPathFrom(io.env, dbFlag);
}

/** 'read': the command only reads (list, show, stats, backup's source); 'write': it may create the file. */
type Access = 'read' | 'write';

/**
 * Opens the file readied as serve would: a newer schema refused untouched, an older one
 * migrated only while no service holds the file (src/queue/instance.ts). A command that only
 * reads refuses a missing file (a typo in --db must not read as "the queue is empty") and
 * opens read-only, so it works on a read-only mount and creates nothing.
 */
function openCliDb(io: CliIo, dbFlag: string | undefined, access: Access): Db {
  const path = dbPathOf(io, dbFlag);
  // Before runtimePaths(): the executable unpacks its cache next to the database.
  if (access === 'read' && path !== ':memory:') {
    try {
      statSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `no database at ${path} (--db or DB_PATH names it); nothing was created`);
      }
      throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot read database ${path}: ${fsReason(err)}`);
    }
  }
  const nativeBinding = runtimePaths().nativeBinding;
  // A write needs the file and its folder writable: say so rather than SQLite's "unable to open".
  if (access === 'write') preflight(path, nativeBinding);
  else refuseNewerFile(path, nativeBinding);
  if (access === 'read') {
    const db = openReadOnly(path, { busyTimeoutMs: CLI_BUSY_TIMEOUT_MS, nativeBinding });
    let version: number;
    try {
      version = schemaVersion(db);
      refuseNewer(version);
    } catch (err) {
      db.close();
      throw err;
    }
    if (version === SCHEMA_VERSION) return db;
    // An older file is migrated first, as for any command (that needs write access).
    db.close();
  }
  const db = openDb(path, { busyTimeoutMs: CLI_BUSY_TIMEOUT_MS, nativeBinding, createDir: true });
  try {
    prepareForCommand(db, path, { nativeBinding });
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

function withDb<T>(io: CliIo, dbFlag: string | undefined, fn: (db: Db) => T, access: Access = 'write'): T {
  const db = openCliDb(io, dbFlag, access);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** withDb for a command that awaits while it holds the database (acl import streams its file). */
async function withDbAsync<T>(io: CliIo, dbFlag: string | undefined, fn: (db: Db) => Promise<T>, access: Access = 'write'): Promise<T> {
  const db = openCliDb(io, dbFlag, access);
  try {
    return await fn(db);
  } finally {
    db.close();
  }
}

/**
 * Runs `fn` on the ACL, groups and stations of the database the options name: PostgreSQL
 * (--database-url / DATABASE_URL) or the SQLite file (--db / DB_PATH), picked in one place
 * (src/cli/engine.ts). The PostgreSQL code is loaded only when it is asked for.
 */
async function withAclStore<T>(io: CliIo, o: EngineFlags, fn: (s: AclStore) => Promise<T>, access: Access = 'write'): Promise<T> {
  const engine = cliEngine(io.env, o);
  if (engine.kind === 'postgres') {
    return withPg(engine.url, async (sql) => fn((await import('./pg/store.ts')).pgAclStore(sql)));
  }
  return withDbAsync(io, engine.dbFlag, (db) => fn(sqliteAclStore(db, () => runtimePaths().nativeBinding)), access);
}

export function buildProgram(io: CliIo, version: string): Command {
  const program = new Command('chargegate')
    .description('Asynchronous EV-charging authorization gateway')
    .version(`chargegate ${version} (node ${process.version})`, '-v, --version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  const serveCmd = program
    .command('serve', { isDefault: true })
    .description('run the service (the default command)');
  for (const v of CONFIG_VARIABLES) {
    if (v.boolean) {
      // A yes/no setting is a switch here (a value after it would read as a command); the
      // environment variable keeps true/false.
      serveCmd.addOption(new Option(v.flag, `${v.doc} (env ${v.env}=true; default ${v.defText})`));
      serveCmd.addOption(new Option(`--no-${v.flag.slice(2)}`, `turn it off (env ${v.env}=false)`));
    } else {
      const arg = v.flag === '--db' || v.flag === '--cache-dir' ? 'path' : 'value';
      serveCmd.addOption(new Option(`${v.flag} <${arg}>`, `${v.doc} (env ${v.env}; default ${v.defText})`));
    }
  }
  serveCmd.addHelpText(
    'after',
    '\nA flag wins over its environment variable, which wins over the default. An invalid value stops the start\n' +
      'with one line naming it (exit 2). SIGTERM or SIGINT stops gracefully (exit 0); see README "Durability".',
  );
  // Extra words are a mistyped command (`chargegate stat`), not arguments of serve.
  serveCmd.allowExcessArguments(true);
  serveCmd.action(async (opts: Record<string, string | boolean | undefined>) => {
    if (serveCmd.args.length > 0) unknownCommand(program, serveCmd.args[0]!);
    const flags: Record<string, string | undefined> = {};
    for (const v of CONFIG_VARIABLES) {
      const key = v.flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
      const given = opts[key];
      if (given !== undefined) flags[v.env] = String(given);
    }
    const config = loadConfig(io.env, flags);
    // Loaded here, not with the CLI: the service's modules (Hapi, joi, pino, piscina,
    // prom-client) are most of the bundle, and no other command needs them.
    const { serve } = await import('../runtime/serve.ts');
    await serve(config, version);
  });

  const dbOption = () => new Option('--db <path>', 'SQLite file (default: $DB_PATH or ./data/chargegate.db)');

  const acl = program.command('acl').description('manage the access-control list');
  acl
    .command('add <token>')
    .description('add or replace a token entry')
    .option('--station <uuid>', 'allow only at this station (repeatable; none = every station)', collect, [])
    .option('--expires <iso>', 'expiry, ISO-8601 (e.g. 2027-01-31T23:59:59Z)')
    .option('--blocked', 'the token is blocked', false)
    .option('--note <text>', 'free text for admins')
    .option('--group <name>', 'member of this group (see acl group add)')
    .option('--valid-from <iso>', 'charges from then on, ISO-8601')
    .option('--allow-offline', 'ask the upstream authorizer first; allowed when it cannot answer', false)
    .option('--token-type <type>', `only for requests naming this OCPI token type (${TOKEN_TYPES.join(', ')}); default any type`)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (token: string, o: EngineFlags & {
      station: string[]; expires?: string; blocked: boolean; note?: string; group?: string; validFrom?: string; allowOffline: boolean;
      tokenType?: string;
    }) => {
      const entry = {
        token: checkToken(token),
        stations: o.station.map(checkStation),
        expires_at: o.expires ? checkExpiry(o.expires) : null,
        blocked: o.blocked,
        note: o.note ?? null,
        group: o.group === undefined ? null : checkGroupName(o.group),
        valid_from: o.validFrom ? checkExpiry(o.validFrom, 'valid-from') : null,
        allow_offline: o.allowOffline,
        token_type: o.tokenType === undefined ? null : checkTokenType(o.tokenType),
      };
      await withAclStore(io, o, (s) => s.add(entry));
      io.out(`acl: added ${entry.token.slice(0, 4)}…${entry.token.slice(-4)}\n`);
    });
  acl
    .command('remove <token>')
    .description('remove a token entry')
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (token: string, o: EngineFlags) => {
      const removed = await withAclStore(io, o, (s) => s.remove(token));
      if (!removed) {
        io.err('acl: no such token\n');
        process.exitCode = 1;
        return;
      }
      io.out('acl: removed\n');
    });
  acl
    .command('list')
    .description('list token entries (tokens masked unless --full)')
    .option('--json', 'JSON output for scripts', false)
    .option('--full', 'show full tokens', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { json: boolean; full: boolean }) => {
      const rows = await withAclStore(io, o, (s) => s.list(o.full), 'read');
      const human = rows.map((r) => ({ ...r, stations: scopeText(r) }));
      io.out(o.json ? `${JSON.stringify(rows)}\n` : `${table(human, ['token', 'stations', 'expires_at', 'blocked', 'note'])}\n`);
    });
  acl
    .command('import <file>')
    .description('import a CSV (header: token,stations,expires_at,blocked,note[,group,valid_from,allow_offline,token_type,remove])')
    .option('--replace', 'full update: remove every entry that is not in the file', false)
    .option('--differential', 'differential update (the default): add, replace, and remove rows marked remove', false)
    .option('--list-version <n>', 'the list version this update brings; an older one is refused (OCPP SendLocalList)')
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (file: string, o: EngineFlags & { replace: boolean; differential: boolean; listVersion?: string }) => {
      if (o.replace && o.differential) throw usageError('give --replace or --differential, not both');
      const listVersion = o.listVersion === undefined ? null : checkListVersion(o.listVersion);
      // Before the database is opened (and, on first use, created) for a file that cannot be read.
      checkReadable(file);
      const r = await withAclStore(io, o, (s) => s.import(file, { replace: o.replace, listVersion }));
      io.out(`acl: imported ${r.imported}, removed ${r.removed}${r.version !== null ? `, list version ${r.version}` : ''}\n`);
    });
  const aclExtras = addAclCommands(acl, {
    out: io.out, err: io.err, withDb: (dbFlag, fn, access) => withDb(io, dbFlag, fn, access), dbOption,
    withAclStore: (o, fn, access) => withAclStore(io, o, fn, access),
  });
  const unknownCmd = addUnknownCommand(acl, { out: io.out, dbOption, withAdmin: (o, fn, access) => withAdmin(io, o, fn, access) });

  const stations = program.command('stations').description("manage the site's registered stations");
  stations
    .command('add <station_id>')
    .description('register a station')
    .option('--name <name>', 'a name for admins')
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (id: string, o: EngineFlags & { name?: string }) => {
      const sid = checkStation(id);
      await withAclStore(io, o, (s) => s.stationAdd(sid, o.name ?? null));
      io.out(`stations: added ${sid}\n`);
    });
  stations
    .command('remove <station_id>')
    .description('unregister a station')
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (id: string, o: EngineFlags) => {
      const sid = checkStation(id);
      const removed = await withAclStore(io, o, (s) => s.stationRemove(sid));
      if (!removed) {
        io.err('stations: no such station\n');
        process.exitCode = 1;
        return;
      }
      io.out('stations: removed\n');
    });
  stations
    .command('list')
    .description('list registered stations')
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { json: boolean }) => {
      const rows = await withAclStore(io, o, (s) => s.stationList(), 'read');
      io.out(o.json ? `${JSON.stringify(rows)}\n` : `${table(rows, ['station_id', 'name', 'created_at'])}\n`);
    });

  const opsCommands = addOpsCommands(program, {
    out: io.out, err: io.err, dbOption, withAdmin: (o, fn, access) => withAdmin(io, o, fn, access),
    engine: (o) => cliEngine(io.env, o), dbPath: (flag) => dbPathOf(io, flag), openRead: (flag) => openCliDb(io, flag, 'read'),
  });

  const dbCommands = addDbCommands(program, {
    out: io.out, err: io.err, dbOption, dbPath: (flag) => dbPathOf(io, flag), openRead: (flag) => openCliDb(io, flag, 'read'),
    nativeBinding: () => runtimePaths().nativeBinding,
  });

  program
    .command('openapi')
    .description('print the OpenAPI 3.1 description of the HTTP API (the document GET /openapi.json serves)')
    .action(async () => {
      const { apiDocument } = await import('../http/server.ts');
      io.out(`${JSON.stringify(await apiDocument(version), null, 2)}\n`);
    });

  for (const cmd of [program, ...program.commands, ...acl.commands, ...aclExtras, unknownCmd, ...stations.commands, ...opsCommands, ...dbCommands]) {
    cmd.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
  }
  return program;
}

/**
 * Runs `fn` on the admin reads and writes of the database the options name: PostgreSQL
 * (--database-url / DATABASE_URL, as for serve) or the SQLite file (--db / DB_PATH), picked
 * in one place (src/cli/engine.ts). The PostgreSQL code is loaded only when asked for.
 */
async function withAdmin<T>(io: CliIo, o: EngineFlags, fn: (a: AdminStore) => Promise<T>, access: Access = 'write'): Promise<T> {
  const engine = cliEngine(io.env, o);
  if (engine.kind === 'postgres') {
    const { pgAdmin } = await import('./pg/admin.ts');
    return withPg(engine.url, (sql) => fn(pgAdmin(sql)));
  }
  return withDbAsync(io, engine.dbFlag, (db) => fn(sqliteAdmin(db)), access);
}

/** A file an import reads: missing, a folder or unreadable is a usage error, in words. */
function checkReadable(file: string): void {
  try {
    if (statSync(file).isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
    accessSync(file, constants.R_OK);
  } catch (err) {
    throw usageError(`cannot read ${file}: ${fsReason(err)}`);
  }
}

/** commander's own "unknown command 'x' (Did you mean y?)", as subcommands give it; exit 2. */
function unknownCommand(program: Command, name: string): never {
  program.args = [name];
  (program as unknown as { unknownCommand(): never }).unknownCommand();
  throw new Error('unreachable');
}

/** Runs the CLI; resolves to the process exit code. */
export async function runCli(argv: string[], io: CliIo, version: string): Promise<number> {
  const program = buildProgram(io, version);
  try {
    // serve is the default command, so commander would hand it a mistyped command name
    // ("too many arguments for 'serve'"): a first word that names no command is refused here.
    const first = argv[0];
    const known = (name: string) => name === 'help' || program.commands.some((c) => c.name() === name || c.aliases().includes(name));
    if (first !== undefined && !first.startsWith('-') && !known(first)) unknownCommand(program, first);
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; commander has already printed its one-line message.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (isChargegateError(err)) {
      io.err(`chargegate: ${err.message}\n`);
      return err.code === 'CG_ERR_USAGE' || err.code === 'CG_ERR_CONFIG' ? 2 : 1;
    }
    io.err(`chargegate: ${(err as Error).message}\n`);
    return 1;
  }
}
