import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { ChargegateError } from '../core/errors.ts';
import { originOf } from '../core/origin.ts';
import { hashToken, maskToken } from '../core/token.ts';
import { uuidv7 } from '../core/uuid7.ts';
import type { SessionBody, TokenType } from '../core/types.ts';
import { DEFAULT_TOKEN_TYPE } from '../core/validate.ts';
import type { Depth } from './depth.ts';
import type { AcceptOutcome, KeyHit, Queue } from './queue.ts';

// Accepting a request: reserve room under the bound, write the row in the next group
// commit, and only then answer. The 202 means "committed" (SPEC §3).

/** How long an Idempotency-Key is remembered (Stripe and the IETF draft use 24 h). */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

/** The dispatcher's side of the direct hand-off of freshly accepted rows. */
export interface Handoff {
  /** Reserves an in-flight slot; false when the dispatcher is full (the row then waits queued). */
  tryReserve(): boolean;
  /** Gives up a reserved slot whose row did not commit. */
  cancel(): void;
  /** Takes a committed, already-claimed row. */
  adopt(row: {
    id: string; station_id: string; driver_token: string; token_type: TokenType; callback_url: string; origin: string; client: string | null;
  }): void;
  readonly leaseMs: number;
}

export interface IntakeDeps {
  queue: Pick<Queue, 'accept' | 'findKey'>;
  depth: Depth;
  log: Logger;
  /** Called after each commit that accepted requests, to wake the dispatcher. */
  onAccepted: () => void;
  handoff?: Handoff;
  now?: () => number;
}

export interface Accepted {
  request_id: string;
  /** True when an Idempotency-Key repeat got the first request's answer. */
  replayed: boolean;
}

/**
 * The body's identity for Idempotency-Key: the validated fields in a fixed order. The
 * token type joins only when it is not the default, so keys stored before token types
 * existed (and bodies that name RFID or nothing) keep the hash they had.
 */
function bodyHash(b: SessionBody): string {
  const fields = [b.station_id, b.driver_token, b.callback_url];
  if (b.token_type !== DEFAULT_TOKEN_TYPE) fields.push(b.token_type);
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

/** The first request under an Idempotency-Key: its id and body hash, and whether it was there already. */
interface First {
  id: string;
  hash: string;
  found: boolean;
}

export function createIntake(deps: IntakeDeps) {
  const { queue, depth, log, onAccepted } = deps;
  const now = deps.now ?? Date.now;
  let closed = false;
  // Keys whose first request is being committed right now: a concurrent repeat waits for
  // it instead of racing it into a second row.
  const pendingKeys = new Map<string, Promise<First>>();

  /** The new request's id; with a key, the key's first request when another instance committed it first. */
  async function insert(body: SessionBody, key: string | null, hash: string | null, client: string | null): Promise<string | KeyHit> {
    const room = depth.tryReserve(client);
    if (room === 'full') throw new ChargegateError('CG_ERR_QUEUE_FULL', `the queue is full (${depth.max} requests pending); retry later`);
    if (room === 'share') {
      throw new ChargegateError('CG_ERR_QUEUE_FULL', `this client has ${depth.maxPerClient} requests pending (its share of the queue); retry later`);
    }
    const at = now();
    const row = {
      id: uuidv7(at),
      station_id: body.station_id,
      driver_token: body.driver_token,
      token_hash: hashToken(body.driver_token),
      token_mask: maskToken(body.driver_token),
      token_type: body.token_type ?? DEFAULT_TOKEN_TYPE,
      callback_url: body.callback_url,
      origin: originOf(body.callback_url),
      client,
      created_at: at,
    };
    const handoff = deps.handoff?.tryReserve() ? deps.handoff : null;
    let outcome: AcceptOutcome;
    try {
      outcome = await queue.accept(row, key, hash, handoff ? handoff.leaseMs : null);
    } catch (err) {
      handoff?.cancel();
      depth.unreserve(client);
      log.error({ err: String(err) }, 'could not commit an accepted request');
      throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', 'the database is unavailable; retry later');
    }
    if (outcome !== null) {
      handoff?.cancel();
      depth.unreserve(client);
      if (outcome === 'full') throw new ChargegateError('CG_ERR_QUEUE_FULL', `the queue is full (${depth.max} requests pending); retry later`);
      // Another instance committed the same key first: its request is the answer.
      return outcome;
    }
    depth.committed(client);
    log.info({ request_id: row.id, station_id: row.station_id, driver_token: row.token_mask, ...(client ? { client } : {}) }, 'accepted');
    if (handoff) handoff.adopt(row);
    else onAccepted();
    return row.id;
  }

  function replay(key: string, firstHash: string, hash: string, id: string): Accepted {
    if (firstHash !== hash) {
      throw new ChargegateError('CG_ERR_IDEMPOTENCY_MISMATCH', 'this Idempotency-Key was used with a different request body');
    }
    log.info({ request_id: id }, 'idempotent repeat');
    return { request_id: id, replayed: true };
  }

  /**
   * Accepts one validated request. `client` is the API key's name (null without keys); an
   * Idempotency-Key is the client's own: two clients may use the same key text.
   */
  async function accept(body: SessionBody, idempotencyKey: string | null = null, client: string | null = null): Promise<Accepted> {
    if (closed) throw new ChargegateError('CG_ERR_SHUTTING_DOWN', 'the service is shutting down; retry against the restarted service');
    // Without a key insert resolves to the new id (a KeyHit needs a key).
    if (idempotencyKey === null) return { request_id: (await insert(body, null, null, client)) as string, replayed: false };
    // Client names cannot contain '/', so a client's keys never meet another's.
    const key = client === null ? idempotencyKey : `${client}/${idempotencyKey}`;

    const hash = bodyHash(body);
    const pending = pendingKeys.get(key);
    if (pending) {
      let first: First;
      try {
        first = await pending;
      } catch {
        // The first attempt failed (503): this one is a first attempt of its own.
        return accept(body, idempotencyKey, client);
      }
      return replay(key, first.hash, hash, first.id);
    }
    // Registered before the key is looked up: a repeat arriving meanwhile waits for this one.
    const lookup = firstOf(key, body, hash, client);
    pendingKeys.set(key, lookup);
    try {
      const first = await lookup;
      return first.found ? replay(key, first.hash, hash, first.id) : { request_id: first.id, replayed: false };
    } finally {
      pendingKeys.delete(key);
    }
  }

  async function firstOf(key: string, body: SessionBody, hash: string, client: string | null): Promise<First> {
    let found: { body_hash: string; request_id: string } | null;
    try {
      found = await queue.findKey(key, now() - IDEMPOTENCY_TTL_MS);
    } catch {
      throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', 'the database is unavailable; retry later');
    }
    if (found) return { id: found.request_id, hash: found.body_hash, found: true };
    const r = await insert(body, key, hash, client);
    return typeof r === 'string' ? { id: r, hash, found: false } : { id: r.request_id, hash: r.body_hash, found: true };
  }

  return {
    accept,
    /** Refuse new requests from now on (graceful shutdown). */
    close(): void {
      closed = true;
    },
  };
}

export type Intake = ReturnType<typeof createIntake>;
