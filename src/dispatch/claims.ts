import type { Logger } from 'pino';
import type { ClaimedRow, ClaimResult, Queue } from '../queue/queue.ts';
import type { Lane, Origins } from './lanes.ts';

// The claim loop: takes due rows from the database into whichever lane has room, and
// sleeps until the next row is due otherwise. One claim at a time; a kick during a claim
// runs another right after, so no wake-up is lost. Decision slots are reserved before the
// claim and what it did not fill given back after; delivery slots are taken inside the
// claim's transaction, per row chosen. All are given back if the claim does not commit.

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
  // Slots held by the claim under way: the decision slots reserved, the origins taken.
  let taken: { reserved: boolean; undecided: number; origins: string[] } | null = null;

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
    saturated: () => origins.saturated(),
    take(origin: string): boolean {
      if (!origins.tryTake(origin)) return false;
      taken!.origins.push(origin);
      return true;
    },
    deliverable: () => Math.min(origins.free, MAX_CLAIM),
    // Asked only when the claim did not fill its reservation: a lane with room wants its next due time.
    wantNext: () => ({ undecided: taken!.undecided > 0, deliverable: origins.free > 0 }),
  };

  function claim(): Promise<ClaimResult> {
    taken = { reserved: false, undecided: 0, origins: [] };
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

  function kick(): void {
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
        const reserved = taken!.undecided;
        settle(r);
        deps.onClaimed(r.undecided, r.deliverable);
        const full = reserved > 0 && r.undecided.length === reserved;
        if (full || again) kick();
        else schedule(r.next === null ? deps.pollMs : r.next - now());
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
