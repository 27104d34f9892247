import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ChargegateError } from './core/errors.ts';
import { hashToken, maskToken } from './core/token.ts';
import type { Committer } from './queue/committer.ts';
import type { Depth } from './queue/depth.ts';
import type { Store } from './queue/store.ts';
import type { SessionBody } from './core/types.ts';

// Accepting a request: reserve room under the bound, write the row in the next group
// commit, and only then answer. The 202 means "on disk" (SPEC §3).

export interface IntakeDeps {
  store: Store;
  committer: Committer;
  depth: Depth;
  log: Logger;
  /** Called after each commit that accepted requests, to wake the dispatcher. */
  onAccepted: () => void;
  now?: () => number;
}

export function createIntake(deps: IntakeDeps) {
  const { store, committer, depth, log, onAccepted } = deps;
  const now = deps.now ?? Date.now;
  let closed = false;

  return {
    async accept(body: SessionBody): Promise<string> {
      if (closed) throw new ChargegateError('CG_ERR_SHUTTING_DOWN', 'the service is shutting down; retry against the restarted service');
      if (!depth.tryReserve()) {
        throw new ChargegateError('CG_ERR_QUEUE_FULL', `the queue is full (${depth.max} requests pending); retry later`);
      }
      const row = {
        id: randomUUID(),
        station_id: body.station_id,
        driver_token: body.driver_token,
        token_hash: hashToken(body.driver_token),
        token_mask: maskToken(body.driver_token),
        callback_url: body.callback_url,
        created_at: now(),
      };
      try {
        await committer.run(() => store.insert(row));
      } catch (err) {
        depth.unreserve();
        log.error({ err: String(err) }, 'could not commit an accepted request');
        throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', 'the database is unavailable; retry later');
      }
      depth.committed();
      log.info({ request_id: row.id, station_id: row.station_id, driver_token: row.token_mask }, 'accepted');
      onAccepted();
      return row.id;
    },
    /** Refuse new requests from now on (graceful shutdown). */
    close(): void {
      closed = true;
    },
  };
}

export type Intake = ReturnType<typeof createIntake>;
