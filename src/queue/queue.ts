import type { DecideFacts, DecideItem, Decision, RequestView } from '../core/types.ts';
import type { Decided } from './authcache.ts';
import type { AttemptRecord, Claim, ClaimedRow, NewRequest } from './store.ts';

// The queue as the service uses it: its operations, each a Promise that settles once the
// change is committed (the 202 means committed). How operations are grouped into
// transactions is each engine's own business: SQLite runs one event-loop turn's ops in one
// IMMEDIATE transaction (committer.ts), PostgreSQL one turn's ops in one transaction on one
// connection. Nothing above this file knows which engine it talks to; src/queue/open.ts
// picks one from the configuration.

export type { AttemptRecord, Claim, ClaimedRow, NewRequest } from './store.ts';
export type { Decision } from '../core/types.ts';

/** What one claim asks for; the hooks run inside the claim's transaction, in order. */
export interface ClaimRequest {
  now: number;
  leaseMs: number;
  /**
   * Takes decision slots for undecided rows and says how many (the unfilled are given back
   * after); asked again for the same claim (a retried transaction), the same reservation.
   */
  reserve(): number;
  /** Decided rows to claim at most. */
  deliverable(): number;
  /** Origins at their bound: their rows are passed over. */
  saturated(): string[];
  /** Takes a delivery slot of the origin for one row; false when it has no room. */
  take(origin: string): boolean;
  /** Asked after the claim when it did not fill up: may the next due time of each lane matter? */
  wantNext(): { undecided: boolean; deliverable: boolean };
}

export interface ClaimResult {
  undecided: ClaimedRow[];
  deliverable: ClaimedRow[];
  /** When the next row is due (leases included), null when nothing is open or asked for. */
  next: number | null;
}

/** One decision to record under its claim; keep: its delivery starts now under the same lease. */
export interface DecisionWrite {
  decision: Decision;
  claim: Claim;
  keep: boolean;
}

/** How an accept ended (see Queue.accept). */
export type AcceptOutcome = null | 'full' | KeyHit;

export interface KeyHit {
  body_hash: string;
  request_id: string;
}

/** The API keys as the door needs them (src/queue/keys.ts). */
export interface KeyDoor {
  required(): boolean;
  verify(presented: string): string | null;
  /** Writes last-used times (to the minute); nothing when no key was used. */
  flushUsage(): Promise<number>;
  readonly pending: number;
}

/** What retention removes, one bounded batch per call. */
export type PruneKind = 'requests' | 'keys' | 'origins';

export interface Queue {
  readonly engine: 'sqlite' | 'postgres';
  /** Where the data lives, for logs (a file path, or a URL without its password). */
  readonly where: string;
  /**
   * Writes an accepted request (claimed under a lease of leaseMs when not null) and its
   * Idempotency-Key (when key is not null). Settles once committed: null when written;
   * 'full' when the queue shared by all instances is at maxOpen (nothing written); the
   * key's first request when another instance committed the same key first (nothing written).
   */
  accept(row: NewRequest, key: string | null, bodyHash: string | null, leaseMs: number | null): Promise<AcceptOutcome>;
  /** The request an Idempotency-Key was first used for, if it was used since notBefore. */
  findKey(key: string, notBefore: number): Promise<KeyHit | null>;
  /** Claims due rows of both lanes in one transaction. */
  claim(req: ClaimRequest): Promise<ClaimResult>;
  /**
   * Records decisions under their claims, with what the authorization chain left behind
   * (cache answers, unknown tokens). Per decision: false when its claim no longer holds.
   */
  recordDecisions(writes: DecisionWrite[], requests: Map<string, Decided>, now: number): Promise<boolean[]>;
  /** Records one origin's attempts under their claims and folds them into its stats. */
  recordAttempts(origin: string, records: AttemptRecord[], claims: number[], now: number): Promise<boolean[]>;
  /** Hands claimed rows back, due at `due`; resolves to how many were still ours. */
  release(claims: Claim[], now: number, due?: number): Promise<number>;
  countOpen(): Promise<number>;
  countOpenByClient(): Promise<Map<string, number>>;
  oldestOpenCreatedAt(): Promise<number | null>;
  countFailed(): Promise<number>;
  /** The read model of one request (GET /api/v1/charging-session/{id}). */
  status(id: string): Promise<RequestView | null>;
  /** Removes up to `limit` rows of one kind older than cutoff; resolves to how many. */
  prune(kind: PruneKind, cutoff: number, limit: number): Promise<number>;
  /** After a retention run that removed rows (SQLite: hand WAL pages back). */
  compact(): Promise<void>;
  /** Reads and checks the database would take a write, writing nothing; rejects with why not. */
  probe(): Promise<void>;
  /** Free bytes where the database lives, null when unknown (a remote server). */
  freeBytes(): Promise<number | null>;
  readonly keys: KeyDoor;
  /** Ops waiting for the next commit. */
  readonly pending: number;
  /**
   * Groups committed (visible to reads) whose ops have not settled yet: counts read now are
   * ahead of counters kept from settled ops. SQLite: groups awaiting their WAL fsync;
   * PostgreSQL: 0 (its ops settle with COMMIT).
   */
  readonly unsettled: number;
  /**
   * What a batch of decisions reads, for worker threads that cannot read the database
   * themselves (PostgreSQL). Absent on SQLite: the threads read the file (workers/decide.ts).
   */
  decideFacts?: (items: DecideItem[], withCache: boolean) => Promise<DecideFacts>;
  /** Calls wake when another instance (or a command) committed work this one may claim; SQLite: never. */
  watch(wake: () => void): void;
  /** Commits what is pending, records a clean stop, and closes. */
  close(): Promise<void>;
}
