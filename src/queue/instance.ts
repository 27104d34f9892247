import { hostname } from 'node:os';
import { ChargegateError } from '../core/errors.ts';
import { openDb, type Db } from './db.ts';
import { tryLock, type InstanceLock } from './lock.ts';
import { migrate, refuseNewer, schemaVersion } from './migrate.ts';
import { SCHEMA_VERSION } from './schema.ts';

// Who serves the file. The lock (lock.ts) decides; the service_instance row only says who
// holds it, for the message a refused start or command prints. Holding the lock also
// proves that any lease left in the file belongs to a dead predecessor, so a start hands
// those leases back at once instead of waiting them out.

/** How long `serve` waits for the lock: a command migrating the file holds it briefly. */
export const SERVE_LOCK_WAIT_MS = 2000;
/** How long a command waits for the lock before it concludes a service holds it. */
export const COMMAND_LOCK_WAIT_MS = 1000;

interface Owner {
  pid: number;
  host: string;
  started_at: number;
}

export interface Takeover {
  /** 'dead': a predecessor left its row behind without resigning (it crashed). */
  previous: 'none' | 'dead';
  released: number;
}

/** Who holds the file, as recorded by the holder; null when unknown (a command, or no row). */
function readOwner(db: Db): Owner | null {
  try {
    return (db.prepare('SELECT pid, host, started_at FROM service_instance WHERE id = 1').get() as Owner | undefined) ?? null;
  } catch {
    return null; // a file from before the table existed
  }
}

function ownerText(owner: Owner | null): string {
  return owner ? `pid ${owner.pid} on ${owner.host}, since ${new Date(owner.started_at).toISOString()}` : 'a chargegate command or a service starting';
}

/**
 * Records this process as the serving instance and hands back the leases a dead
 * predecessor left. Call only while holding the lock: then no one else is serving.
 */
export function takeOver(db: Db, now: number, me = { pid: process.pid, host: hostname() }): Takeover {
  return db
    .transaction((): Takeover => {
      const owner = readOwner(db);
      const released = db
        .prepare(`UPDATE charging_requests
          SET locked_at = NULL, due_at = @now, updated_at = @now,
              state = CASE WHEN decision_status IS NULL THEN 'queued' ELSE state END
          WHERE id IN (
            SELECT id FROM charging_requests INDEXED BY charging_requests_undecided WHERE state IN ('queued','authorizing') AND locked_at IS NOT NULL
            UNION ALL
            SELECT id FROM charging_requests INDEXED BY charging_requests_deliverable WHERE state = 'delivering' AND locked_at IS NOT NULL)`)
        .run({ now }).changes;
      // heartbeat_at is no longer kept up to date (the lock proves liveness); it stays = started_at.
      db.prepare(`INSERT INTO service_instance (id, pid, host, started_at, heartbeat_at) VALUES (1, @pid, @host, @now, @now)
        ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`).run({ ...me, now });
      return { previous: owner ? 'dead' : 'none', released };
    })
    .immediate();
}

/** A clean stop leaves no owner behind. */
export function resign(db: Db, pid = process.pid): void {
  db.prepare('DELETE FROM service_instance WHERE id = 1 AND pid = ?').run(pid);
}

export interface ServingOptions {
  nativeBinding?: string | undefined;
  now: number;
  /** Busy timeout while starting (migrations may wait for an admin's transaction). */
  busyTimeoutMs: number;
  lockWaitMs?: number;
}

/**
 * Opens the file for `serve`: takes the lock (or throws "in use", exit 1), migrates, and
 * takes over from a dead predecessor. Migrations run only under the lock, so a second
 * binary started by mistake never changes the schema under the one that serves.
 */
export function openServing(dbPath: string, opts: ServingOptions): { db: Db; lock: InstanceLock; takeover: Takeover; migrated: { from: number; to: number } } {
  const db = openDb(dbPath, { busyTimeoutMs: opts.busyTimeoutMs, nativeBinding: opts.nativeBinding, createDir: true });
  let lock: InstanceLock | null = null;
  try {
    lock = tryLock(dbPath, { waitMs: opts.lockWaitMs ?? SERVE_LOCK_WAIT_MS, nativeBinding: opts.nativeBinding });
    if (!lock) throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `the database is in use by another chargegate (${ownerText(readOwner(db))})`);
    const migrated = migrate(db);
    const takeover = takeOver(db, opts.now);
    return { db, lock, takeover, migrated };
  } catch (err) {
    lock?.release();
    db.close();
    throw err;
  }
}

/**
 * Readies an open file for a CLI command that runs beside the service. A newer schema is
 * refused; an older one is migrated only when no service holds the file (under the lock,
 * briefly); while one does, the command is refused: migrating under a running older
 * binary would change the schema that binary's statements were prepared against.
 */
export function prepareForCommand(db: Db, dbPath: string, opts: { nativeBinding?: string | undefined; lockWaitMs?: number }): void {
  const version = schemaVersion(db);
  refuseNewer(version);
  if (version === SCHEMA_VERSION) return;
  const lock = tryLock(dbPath, { waitMs: opts.lockWaitMs ?? COMMAND_LOCK_WAIT_MS, nativeBinding: opts.nativeBinding });
  if (!lock) {
    throw new ChargegateError(
      'CG_ERR_DB_UNAVAILABLE',
      `the database has schema version ${version} and this chargegate needs ${SCHEMA_VERSION}, but a chargegate service is using it ` +
        `(${ownerText(readOwner(db))}): restart the service with this chargegate (it migrates the file at start), then run the command again`,
    );
  }
  try {
    migrate(db);
  } finally {
    lock.release();
  }
}
