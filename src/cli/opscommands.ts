import type { Command, Option } from 'commander';
import { UUID_RE } from '../core/validate.ts';
import type { Db } from '../queue/db.ts';
import { checkClientName } from '../queue/keys.ts';
import { checkExpiry, checkSince } from './acl.ts';
import type { AdminStore } from './admin.ts';
import { checkBackupTarget, refusePgBackup } from './backup.ts';
import { databaseUrlOption, type CliEngine, type EngineFlags } from './engine.ts';
import { formatRequest, formatStats } from './requests.ts';
import { table, usageError } from './usage.ts';

// The inspection and operations commands (SPEC §6): `requests list|show`, `replay`,
// `backup`, `stats`, `keys`, `receivers`. Each works on the SQLite file (--db / DB_PATH) or
// PostgreSQL (--database-url / DATABASE_URL) through the admin store, never asking which.

export interface OpsContext {
  out: (s: string) => void;
  err: (s: string) => void;
  dbOption: () => Option;
  /** Runs `fn` on the admin store of the database the options name; 'read' opens a SQLite file read-only. */
  withAdmin: <T>(o: EngineFlags, fn: (a: AdminStore) => Promise<T>, access?: 'read' | 'write') => Promise<T>;
  engine: (o: EngineFlags) => CliEngine;
  /** The SQLite file's path (backup's source). */
  dbPath: (dbFlag: string | undefined) => string;
  openRead: (dbFlag: string | undefined) => Db;
}

/** Adds the commands to the program; returns the subcommands made (the top-level ones are the program's). */
export function addOpsCommands(program: Command, ctx: OpsContext): Command[] {
  const { out, err, dbOption, withAdmin, engine, dbPath, openRead } = ctx;

  const requests = program.command('requests').description('inspect accepted requests');
  requests
    .command('list')
    .description('most recent requests first (tokens masked)')
    .option('--state <state>', 'only this state: queued, authorizing, delivering, delivered, failed')
    .option('--limit <n>', 'at most this many rows', '50')
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { state?: string; limit: string; json: boolean }) => {
      const limit = Number(o.limit);
      if (!/^\d+$/.test(o.limit) || limit < 1 || limit > 100_000) throw usageError(`invalid --limit ${JSON.stringify(o.limit)}: expected an integer from 1 to 100000`);
      const rows = await withAdmin(o, (a) => a.requestsList({ state: o.state, limit }), 'read');
      out(o.json ? `${JSON.stringify(rows)}\n` : `${table(rows as never, ['request_id', 'state', 'decision', 'attempts', 'driver_token', 'created_at', 'last_error'])}\n`);
    });
  requests
    .command('show <request_id>')
    .description('one request: decision, attempts, timestamps (same facts as the HTTP API)')
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (id: string, o: EngineFlags & { json: boolean }) => {
      // As the API's 400: a malformed id is a usage error, not "no such request".
      if (!UUID_RE.test(id)) throw usageError(`invalid request id ${JSON.stringify(id)}: must be a UUID`);
      const view = await withAdmin(o, (a) => a.requestShow(id), 'read');
      if (!view) {
        err(`requests: no request ${id}\n`);
        process.exitCode = 1;
        return;
      }
      out(o.json ? `${JSON.stringify(view)}\n` : `${formatRequest(view)}\n`);
    });

  program
    .command('replay [request_id...]')
    .description('re-deliver failed requests with their recorded decision (the ACL is not asked again)')
    .option('--failed', 'every failed request', false)
    .option(
      '--since <time>',
      'with --failed: only those that failed at or after this time: ISO-8601 (2026-11-30T08:00:00Z) or an age (30m, 24h, 7d)',
    )
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (ids: string[], o: EngineFlags & { failed: boolean; since?: string; json: boolean }) => {
      if (o.failed === (ids.length > 0)) throw usageError('give request ids or --failed (not both)');
      if (o.since !== undefined && !o.failed) throw usageError('--since goes with --failed');
      for (const id of ids) if (!UUID_RE.test(id)) throw usageError(`invalid request id ${JSON.stringify(id)}: must be a UUID`);
      const since = o.since === undefined ? null : checkSince(o.since, Date.now());
      const r = await withAdmin(o, (a) => a.replay(o.failed ? { failedSince: since } : { ids }, Date.now()));
      if (o.json) out(`${JSON.stringify(r)}\n`);
      else {
        out(`replay: ${r.replayed.length} re-queued\n`);
        for (const s of r.skipped) err(`replay: ${s.request_id}: ${s.reason}\n`);
      }
      if (r.skipped.length > 0 && !o.failed) process.exitCode = 1;
    });

  program
    .command('backup <file>')
    .description('online backup of the database to <file> (safe while the service runs)')
    .option('--force', 'replace <file> if it exists', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (file: string, o: EngineFlags & { force: boolean }) => {
      const picked = engine(o);
      if (picked.kind === 'postgres') refusePgBackup(picked.url, file);
      const path = dbPath(o.db);
      checkBackupTarget(path, file, o.force);
      const db = openRead(o.db);
      try {
        // SQLite's online backup API copies a consistent snapshot page by page while
        // writers go on; the copy is a plain database file (no WAL needed to read it).
        const r = await db.backup(file);
        out(`backup: ${r.totalPages} pages written to ${file}\n`);
      } finally {
        db.close();
      }
    });

  program
    .command('stats')
    .description('queue depth by state, oldest pending age, decisions, delivery success rates')
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { json: boolean }) => {
      const s = await withAdmin(o, (a) => a.stats(Date.now()), 'read');
      out(o.json ? `${JSON.stringify(s)}\n` : `${formatStats(s)}\n`);
    });

  const keys = program.command('keys').description('API keys, one per client (while any exists, every API call needs one)');
  keys
    .command('add <client>')
    .description('issue a key for a new client; printed once, only its hash is kept')
    .option('--expires <iso>', 'the key stops working at this time (ISO-8601)')
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (client: string, o: EngineFlags & { expires?: string }) => {
      checkClientName(client);
      const expiresAt = o.expires === undefined ? null : Date.parse(checkExpiry(o.expires));
      const key = await withAdmin(o, (a) => a.keysAdd(client, { expiresAt, now: Date.now() }));
      out(`${key}\n`);
      err(`keys: ${client} added; this key is shown once: give it to the client (Authorization: Bearer <key>)\n`);
    });
  keys
    .command('list')
    .description('clients with a key: created, last used, expiry (never the key)')
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { json: boolean }) => {
      const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
      const rows = (await withAdmin(o, (a) => a.keysList(), 'read')).map((r) => ({
        name: r.name, created_at: iso(r.created_at), last_used_at: iso(r.last_used_at), expires_at: iso(r.expires_at),
      }));
      out(o.json ? `${JSON.stringify(rows)}\n` : `${table(rows, ['name', 'created_at', 'last_used_at', 'expires_at'])}\n`);
    });
  keys
    .command('revoke <client>')
    .description('remove a client\'s key; the running service refuses it at once')
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (client: string, o: EngineFlags) => {
      if (!(await withAdmin(o, (a) => a.keysRevoke(client)))) {
        err(`keys: no key for ${client}\n`);
        process.exitCode = 1;
        return;
      }
      out(`keys: ${client} revoked\n`);
    });

  program
    .command('receivers')
    .description('per callback origin: deliveries in flight, queued, last status, consecutive failures, next attempt')
    .option('--all', 'also receivers with nothing open and no failures', false)
    .option('--json', 'JSON output for scripts', false)
    .addOption(dbOption())
    .addOption(databaseUrlOption())
    .action(async (o: EngineFlags & { all: boolean; json: boolean }) => {
      const rows = await withAdmin(o, (a) => a.receivers({ all: o.all }), 'read');
      if (o.json) out(`${JSON.stringify(rows)}\n`);
      else if (rows.length === 0) out('receivers: none in flight, queued or failing (--all lists every known one)\n');
      else {
        const cols = ['origin', 'in_flight', 'queued', 'last_status', 'consecutive_failures', 'next_attempt_at', 'last_delivered_at'];
        out(`${table(rows as never, cols)}\n`);
      }
    });

  return [...requests.commands, ...keys.commands];
}
