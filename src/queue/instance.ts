import { hostname } from 'node:os';
import { ChargegateError } from '../core/errors.ts';
import type { Db } from './db.ts';

// Single-instance guard and crash takeover. Without it, work claimed by a process that was
// killed waits out its whole lease (decision + callback deadlines + slack) before anyone
// picks it up; with it, a restart knows the old owner is dead and resumes at once.

/** How often the owner proves it is alive; three missed beats count as dead. */
export const HEARTBEAT_MS = 5000;

interface Owner {
  pid: number;
  host: string;
  started_at: number;
  heartbeat_at: number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface Takeover {
  previous: 'none' | 'stopped' | 'dead';
  released: number;
}

/**
 * Becomes the serving instance of this file, or throws when another live one is.
 * Leases of a dead predecessor are released so its work is claimable now.
 */
export function takeOver(db: Db, now: number, me = { pid: process.pid, host: hostname() }): Takeover {
  return db
    .transaction((): Takeover => {
      const owner = db.prepare('SELECT pid, host, started_at, heartbeat_at FROM service_instance WHERE id = 1').get() as Owner | undefined;
      if (owner && !(owner.pid === me.pid && owner.host === me.host)) {
        const fresh = owner.heartbeat_at > now - 3 * HEARTBEAT_MS;
        const alive = owner.host === me.host ? pidAlive(owner.pid) && fresh : fresh;
        if (alive) {
          throw new ChargegateError(
            'CG_ERR_DB_UNAVAILABLE',
            `the database is in use by another chargegate (pid ${owner.pid} on ${owner.host}, since ${new Date(owner.started_at).toISOString()})`,
          );
        }
      }
      const released = db
        .prepare(`UPDATE charging_requests
          SET locked_at = NULL, due_at = @now, updated_at = @now,
              state = CASE WHEN decision_status IS NULL THEN 'queued' ELSE state END
          WHERE locked_at IS NOT NULL AND state IN ('queued','authorizing','delivering')`)
        .run({ now }).changes;
      db.prepare(`INSERT INTO service_instance (id, pid, host, started_at, heartbeat_at) VALUES (1, @pid, @host, @now, @now)
        ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`).run({ ...me, now });
      return { previous: owner ? 'dead' : 'none', released };
    })
    .immediate();
}

export function heartbeat(db: Db, now: number, pid = process.pid): void {
  db.prepare('UPDATE service_instance SET heartbeat_at = ? WHERE id = 1 AND pid = ?').run(now, pid);
}

/** A clean stop leaves no owner behind. */
export function resign(db: Db, pid = process.pid): void {
  db.prepare('DELETE FROM service_instance WHERE id = 1 AND pid = ?').run(pid);
}
