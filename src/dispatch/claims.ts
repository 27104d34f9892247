import type { Logger } from 'pino';
import type { ClaimedRow, ClaimResult, Queue } from '../queue/queue.ts';
import type { Lane, Origins } from './lanes.ts';

// The claim loop: takes due rows from the database into whichever lane has room, and
// sleeps until the next row is due otherwise. One claim at a time; a kick during a claim
// runs another right after, so no wake-up is lost. Decision slots are reserved before the
// claim and what it did not fill given back after; delivery slots are taken inside the
// claim's transaction, per row chosen. All are given back if the claim does not commit.
//
// A freed slot (freed()) runs a claim only while the table may hold due rows that no lane
// holds. At a steady rate every row goes from accept to decision to delivery in memory (the
// hand-off), and a claim per freed slot found nothing: at 500 req/s those empty claims were
// the largest single cost of the main thread (docs/performance.md). The flag is set by
// kick() (rows accepted without a hand-off, left in the table by a decision whose origin had
// no room, handed back, retried later; other writers; the timer) and cleared by a claim that
// had room in both lanes, took less than it could and passed over no row for want of room.
// The timer still looks at least every pollMs, so no due row waits longer than that.

/** Rows per claim: one transaction stays short even when a backlog drains. */
const MAX_CLAIM = 1024;

export interface ClaimDeps {
  queue: Pick<Queue, 'claim'>;
  decisions: Lane;
  origins: Origins;
  leaseMs: number;
  log: Logger;
  now: () => number;
  /** Longest sleep between looks at the queue (CLI replays, other writers). */
  pollMs: number;
  /** Receives the claimed rows; their lane slots are already taken. */
  onClaimed(undecided: ClaimedRow[], deliverable: ClaimedRow[]): void;
}

export function createClaimLoop(deps: ClaimDeps) {
  const { queue, decisions, origins, leaseMs, log, now } = deps;
  let claiming = false;
  let again = false;
  let stopped = true;
  let timer: NodeJS.Timeout | null = null;
  // Whether the table may hold due rows that no lane holds (see above).
  let dirty = true;
  // Slots held by the claim under way: the decision slots reserved, the origins taken; the
  // room it had for deliverable rows, and whether it passed over a due row for want of room.
  let taken: { reserved: boolean; undecided: number; origins: string[]; deliverable: number; passedOver: boolean } | null = null;

  function schedule(ms: number): void {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      kick();
    }, Math.max(0, Math.min(ms, deps.pollMs)));
  }

  const hooks = {
    // Called inside the claim's transaction, when it runs: accepts of the same turn took
    // their hand-off slots before it, as when slots were taken after the claim's query.
    // Once per claim: an engine that runs the claim again (PostgreSQL, after its group
    // rolled back) gets the same reservation.
    reserve(): number {
      if (taken!.reserved) return taken!.undecided;
      const n = Math.min(decisions.room, MAX_CLAIM);
      decisions.tryTake(n);
      taken!.reserved = true;
      taken!.undecided = n;
      return n;
    },
    saturated(): string[] {
      const full = origins.saturated();
      if (full.length > 0) taken!.passedOver = true; // their due rows, if any, are skipped
      return full;
    },
    take(origin: string): boolean {
      if (!origins.tryTake(origin)) {
        taken!.passedOver = true;
        return false;
      }
      taken!.origins.push(origin);
      return true;
    },
    deliverable: () => (taken!.deliverable = Math.min(origins.free, MAX_CLAIM)),
    // Asked only when the claim did not fill its reservation: a lane with room wants its next due time.
    wantNext: () => ({ undecided: taken!.undecided > 0, deliverable: origins.free > 0 }),
  };

  function claim(): Promise<ClaimResult> {
    taken = { reserved: false, undecided: 0, origins: [], deliverable: 0, passedOver: false };
    return queue.claim({ now: now(), leaseMs, ...hooks });
  }

  /** Gives back the reserved slots the claim did not fill (all of them when it failed). */
  function settle(r: ClaimResult | null): void {
    const t = taken!;
    taken = null;
    decisions.give(t.undecided - (r ? r.undecided.length : 0));
    const got = new Map<string, number>();
    for (const row of r?.deliverable ?? []) got.set(row.origin, (got.get(row.origin) ?? 0) + 1);
    for (const o of t.origins) {
      const n = got.get(o) ?? 0;
      if (n > 0) got.set(o, n - 1);
      else origins.give(o);
    }
  }

  /** Work may be due in the table: look now. */
  function kick(): void {
    dirty = true;
    run();
  }

  function run(): void {
    if (stopped) return;
    if (claiming) {
      again = true;
      return;
    }
    if (decisions.room === 0 && origins.free === 0) return;
    claiming = true;
    again = false;
    claim().then(
      (r) => {
        claiming = false;
        const t = taken!;
        settle(r);
        deps.onClaimed(r.undecided, r.deliverable);
        const full = t.undecided > 0 && r.undecided.length === t.undecided;
        if (full || again) {
          run();
          return;
        }
        // Drained: room in both lanes, less taken than there was room for, nothing passed over.
        if (t.undecided > 0 && r.deliverable.length < t.deliverable && !t.passedOver) dirty = false;
        schedule(r.next === null ? deps.pollMs : r.next - now());
      },
      (err) => {
        claiming = false;
        // The transaction rolled back: give back the slots taken for it.
        settle(null);
        log.error({ err: String(err) }, 'claim failed; retrying');
        schedule(deps.pollMs);
      },
    );
  }

  return {
    kick,
    /** A lane slot came free: claim for it only if the table may hold due rows. */
    freed(): void {
      if (dirty) run();
    },
    start(): void {
      stopped = false;
      kick();
    },
    stop(): void {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
