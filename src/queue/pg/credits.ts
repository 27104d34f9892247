import type { Sql } from 'postgres';

// QUEUE_MAX_SIZE across all instances, without a lock on every accept. Checking one shared
// counter in each accept's transaction (the first design: the queue_depth row read FOR
// UPDATE) made every accept group of every instance wait for the previous one's commit:
// under load the sessions spent most of their time in Lock waits (bench/pgwaits.ts,
// docs/postgres.md). Instead each instance takes room in blocks ("credits") in a short
// transaction of its own, serialized across instances by an advisory lock, and spends them
// in memory; an accept then writes its row without touching anything shared.
//
// The guarantee: committed open requests + every instance's unspent and in-flight credits
// <= QUEUE_MAX_SIZE, at all times. A grant sees the committed open count (queue_depth, kept
// by triggers in per-backend shards so writers do not queue on one row) plus what every
// other instance recorded in queue_credit at its last grant; an instance records there all
// it holds (unspent + spent in transactions not yet committed + the new block). A row it
// committed since is then counted twice until its next grant: a conservative error only.
// The price: near the bound an instance may answer "full" while up to its recorded credits
// (at most BLOCK, and a grant gives at most an eighth of the room left) are unused
// or already counted elsewhere; an idle instance writes what it really holds after IDLE_MS.

/** Most credits one grant gives. */
export const CREDIT_BLOCK = 64;
/** An instance without accepts for this long gives its unspent credits back. */
const IDLE_MS = 1000;
/** Key of the advisory lock grants take turns on (any constant all instances agree on). */
const GRANT_LOCK = 0x63670002;

export interface Credits {
  /** One credit for one accept: false when the shared queue has no room; rejects when the database failed. */
  take(): Promise<boolean>;
  /** The accept that took a credit settled; `written`: its row may be in the table. */
  settle(written: boolean): void;
  /** Forget what was recorded (this instance's session was lost): the next accept records again. */
  reset(): void;
  /** Gives unspent credits back (idle, or closing). */
  giveBack(): Promise<void>;
  /** Stops the idle timer and waits for a grant under way. */
  stop(): Promise<void>;
}

export function createCredits(sql: Sql, opts: { me: string; max: number; now: () => number }): Credits {
  let unspent = 0;
  let inFlight = 0;
  let waiting: Array<{ resolve: (ok: boolean) => void; reject: (err: unknown) => void }> = [];
  let granting: Promise<void> | null = null;
  let lastTake = 0;
  // What queue_credit says this instance holds (as last written): more than it holds once
  // its spent credits committed, until it writes again.
  let recorded = 0;

  async function grant(): Promise<void> {
    const want = waiting.length;
    const held = unspent + inFlight;
    let granted = 0;
    let failed: unknown = null;
    try {
      granted = await sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${GRANT_LOCK})`;
        // Room left after the committed open rows and what the other instances hold; a grant
        // takes what the waiters need, plus up to a block but never more than an eighth of
        // the room, so the last room is shared out in small grants.
        const [r] = await tx<Array<{ granted: number }>>`WITH used AS (
            SELECT (SELECT COALESCE(SUM(open), 0) FROM queue_depth_shard)
                 + (SELECT COALESCE(SUM(credits), 0) FROM queue_credit WHERE instance_id <> ${opts.me}) AS n),
          room AS (SELECT ${opts.max}::bigint - n - ${held}::bigint AS r FROM used),
          g AS (SELECT GREATEST(0, LEAST(r, GREATEST(${want}::bigint, LEAST(${CREDIT_BLOCK}::bigint, r / 8)))) AS granted FROM room)
          INSERT INTO queue_credit (instance_id, credits, updated_at)
          SELECT ${opts.me}, ${held}::bigint + granted, ${opts.now()} FROM g
          ON CONFLICT (instance_id) DO UPDATE SET credits = excluded.credits, updated_at = excluded.updated_at
          RETURNING credits - ${held}::bigint AS granted`;
        return r!.granted;
      });
      recorded = held + granted;
    } catch (err) {
      // Nothing granted. Whether it committed is unknown: the record may be higher than what
      // this instance holds (refusing early, never admitting too many) until it writes again.
      failed = err;
      recorded = Number.MAX_SAFE_INTEGER;
    }
    unspent += granted;
    const served = waiting.slice(0, want);
    waiting = waiting.slice(want);
    for (const w of served) {
      if (unspent > 0) {
        unspent--;
        inFlight++;
        w.resolve(true);
      } else if (failed !== null) {
        // The database, not the queue, is the reason: the accept fails as a failed commit would.
        w.reject(failed);
      } else w.resolve(false);
    }
  }

  // Grants and give-backs of this instance run one at a time: each writes all this instance
  // holds, so a later write must not be overtaken by an earlier one.
  function startGrant(): void {
    if (granting) return;
    granting = grant().finally(() => {
      granting = null;
      // Waiters that came during the grant: the next one. (Not merely because credits are low:
      // with the queue full that would ask again and again; the next take() asks.)
      if (waiting.length > 0) startGrant();
    });
  }

  async function writeBack(): Promise<void> {
    unspent = 0;
    // What is in flight stays recorded; the rows it commits are counted by queue_depth.
    const held = inFlight;
    try {
      await sql`UPDATE queue_credit SET credits = ${held}, updated_at = ${opts.now()} WHERE instance_id = ${opts.me}`;
      recorded = held;
    } catch {
      // Still recorded as before: refusing early, never admitting too many.
    }
  }

  const idle = setInterval(() => {
    if (recorded > inFlight && !granting && opts.now() - lastTake >= IDLE_MS) void credits.giveBack();
  }, IDLE_MS);
  idle.unref();

  const credits: Credits = {
    take(): Promise<boolean> {
      lastTake = opts.now();
      if (unspent > 0 && waiting.length === 0) {
        unspent--;
        inFlight++;
        // Ask for the next block before this one runs out: accepts need not wait for it.
        if (unspent < CREDIT_BLOCK / 4) startGrant();
        return Promise.resolve(true);
      }
      return new Promise<boolean>((resolve, reject) => {
        waiting.push({ resolve, reject });
        startGrant();
      });
    },
    settle(written: boolean): void {
      inFlight--;
      if (!written) unspent++;
    },
    reset(): void {
      unspent = 0;
      recorded = 0;
    },
    async giveBack(): Promise<void> {
      while (granting) await granting;
      if (waiting.length > 0) return;
      granting = writeBack().finally(() => {
        granting = null;
        if (waiting.length > 0) startGrant();
      });
      await granting;
    },
    async stop(): Promise<void> {
      clearInterval(idle);
      while (granting) await granting;
    },
  };
  return credits;
}
