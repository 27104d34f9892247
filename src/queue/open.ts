import type { Logger } from 'pino';
import { ChargegateError } from '../core/errors.ts';
import type { CommitterHooks } from './committer.ts';
import type { Db } from './db.ts';
import { preflight, watchWal } from './dbfile.ts';
import { openServing } from './instance.ts';
import type { Queue } from './queue.ts';
import { randomUUID } from 'node:crypto';
import { connectPg, redactUrl } from './pg/connect.ts';
import { releaseDeadInstances } from './pg/instances.ts';
import { migratePg } from './pg/migrate.ts';
import { createPgQueue } from './pg/queue.ts';
import { createReach } from './pg/reach.ts';
import { createSqliteQueue } from './sqlite.ts';

// The one place that picks the engine: PostgreSQL when DATABASE_URL is set, else the
// SQLite file at DB_PATH. Everything engine-specific about starting (the file lock,
// migrations, taking over a dead predecessor's leases) happens here.

/** Short on the service: a synchronous SQLite busy-wait blocks the whole event loop. */
const SERVICE_BUSY_TIMEOUT_MS = 250;
/** How often the -wal/-shm and lock files are checked for deletion (the window in which a crash could still lose commits). */
const WAL_CHECK_MS = 1000;

/** The settings the queue needs (src/config.ts Config has them all). */
export interface QueueSettings {
  dbPath: string;
  databaseUrl: string | null;
  queueMaxSize: number;
  authorizerCacheMaxEntries: number;
  apiKeysRequired: boolean;
}

export interface OpenQueueOptions {
  log: Logger;
  now: () => number;
  nativeBinding: string | undefined;
  hooks: CommitterHooks;
  /**
   * The database can no longer be trusted until a restart (SQLite: its WAL or lock file was
   * deleted under the service). Called once, with why.
   */
  onLost: (why: string) => void;
}

export interface OpenedQueue {
  queue: Queue;
  /** A fault known without probing (see onLost), or null. */
  fault(): string | null;
  /** The SQLite connection, for tests that look into the file; null on PostgreSQL. */
  db: Db | null;
}

export async function openQueue(config: Readonly<QueueSettings>, opts: OpenQueueOptions): Promise<OpenedQueue> {
  if (config.databaseUrl !== null) return openPostgres(config.databaseUrl, config, opts);
  return openSqlite(config, opts);
}

async function openPostgres(url: string, config: Readonly<QueueSettings>, opts: OpenQueueOptions): Promise<OpenedQueue> {
  const { log } = opts;
  const where = redactUrl(url);
  const sql = connectPg(url);
  const life = connectPg(url, { max: 1, name: 'chargegate (liveness)' });
  try {
    const migrated = await migratePg(sql);
    if (migrated.from !== migrated.to) log.info({ ...migrated, db: where }, 'database migrated');
    const instanceId = randomUUID();
    const dead = await releaseDeadInstances(sql, instanceId, opts.now());
    if (dead.released) log.warn({ ...dead }, 'instances that died left claimed requests; they are resumed now');
    const reach = createReach(sql, opts.hooks);
    const queue = await createPgQueue(sql, {
      where, instanceId, life, maxOpen: config.queueMaxSize, maxCacheEntries: config.authorizerCacheMaxEntries,
      keysRequired: config.apiKeysRequired, now: opts.now, hooks: reach.hooks,
    });
    const close = queue.close.bind(queue);
    queue.close = async () => {
      reach.stop();
      await close();
    };
    // Unreachable is not lost: the service answers 503 meanwhile and resumes by itself.
    return { queue, fault: reach.fault, db: null };
  } catch (err) {
    await Promise.all([sql.end({ timeout: 1 }), life.end({ timeout: 1 })]).catch(() => undefined);
    if (err instanceof ChargegateError) throw err;
    throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot open database ${where}: ${(err as Error).message}`);
  }
}

function openSqlite(config: Readonly<QueueSettings>, opts: OpenQueueOptions): OpenedQueue {
  const { log } = opts;
  preflight(config.dbPath, opts.nativeBinding);
  // Refused (exit 1) while another chargegate holds the file's lock; see src/queue/lock.ts.
  const opened = openServing(config.dbPath, { busyTimeoutMs: 5000, nativeBinding: opts.nativeBinding, now: opts.now() });
  const { db, lock, takeover, migrated } = opened;
  if (migrated.from !== migrated.to) log.info({ ...migrated, db: config.dbPath }, 'database migrated');
  if (takeover.released) log.warn({ released: takeover.released }, 'previous instance died; its claimed requests are resumed now');
  db.pragma(`busy_timeout = ${SERVICE_BUSY_TIMEOUT_MS}`);
  let fault: string | null = null;
  let wal: { stop(): void } | null = null;
  const queue = createSqliteQueue(db, {
    path: config.dbPath,
    maxCacheEntries: config.authorizerCacheMaxEntries,
    keysRequired: config.apiKeysRequired,
    now: opts.now,
    // The commits' fsync runs off the event loop (see createCommitter).
    hooks: { ...opts.hooks, walPath: `${config.dbPath}-wal` },
    onClosed: () => {
      // Last: once it is released another chargegate may start on the file.
      lock.release();
    },
    onClosing: () => wal?.stop(),
  });
  // Deleting the WAL under the service is silent and loses every commit since the last
  // checkpoint at the next crash: copy them into the main file at once, refuse new work
  // (its commits would go to a file no one else can see), and have the service restarted.
  // Losing the lock file is as bad: a second chargegate could start on the file beside us.
  wal = watchWal(config.dbPath, WAL_CHECK_MS, (file) => {
    const lockLost = file === lock.path;
    fault = lockLost
      ? `${file} (the single-instance lock) was deleted or replaced while in use; another chargegate could start on this database; restart needed`
      : `${file} was deleted or replaced while in use; restart needed`;
    let checkpointed = false;
    for (let i = 0; i < 5 && !checkpointed; i++) {
      try {
        const [r] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
        checkpointed = r?.busy === 0;
      } catch (err) {
        log.error({ err: String(err) }, 'checkpoint after losing the WAL failed');
      }
    }
    log.error(
      { file, checkpointed },
      lockLost
        ? 'instance lock file deleted or replaced under the running service; stopping for a restart'
        : 'write-ahead log file deleted or replaced under the running service; its commits were copied into the main file; exiting for a restart',
    );
    opts.onLost(fault);
  }, [lock.path]);
  return { queue, fault: () => fault, db };
}
