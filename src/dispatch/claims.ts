import type { Logger } from 'pino';
import type { Committer } from '../queue/committer.ts';
import type { ClaimedRow, Store } from '../queue/store.ts';
import type { Lane, Origins } from './lanes.ts';

// The claim loop: takes due rows from the database into whichever lane has room, and
// sleeps until the next row is due otherwise. One claim at a time; a kick during a claim
// runs another right after, so no wake-up is lost. Slots are taken inside the claim's own
// transaction (nothing else runs in between) and given back if it does not commit.

/** Rows per claim: one transaction stays short even when a backlog drains. */
const MAX_CLAIM = 1024;

export interface ClaimDeps {
  store: Store;
  committer: Committer;
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
  const { store, committer, decisions, origins, leaseMs, log, now } = deps;
  let claiming = false;
  let again = false;
  let stopped = true;
  let timer: NodeJS.Timeout | null = null;
  // Slots taken by the claim whose transaction has not committed yet.
  let taken: { undecided: number; origins: string[] } | null = null;

  function schedule(ms: number): void {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      kick();
    }, Math.max(0, Math.min(ms, deps.pollMs)));
  }

  function claim(): { undecided: ClaimedRow[]; deliverable: ClaimedRow[]; full: boolean; next: number | null } {
    const at = now();
    const dLimit = Math.min(decisions.room, MAX_CLAIM);
    const undecided = store.claimUndecided(at, dLimit, leaseMs);
    decisions.tryTake(undecided.length);
    taken = { undecided: undecided.length, origins: [] };
    const vLimit = Math.min(origins.free, MAX_CLAIM);
    const saturated = origins.saturated();
    const deliverable = vLimit > 0 ? store.claimDeliverable(at, vLimit, leaseMs, saturated, (o) => origins.room(o)) : [];
    for (const r of deliverable) {
      origins.tryTake(r.origin);
      taken.origins.push(r.origin);
    }
    const full = undecided.length === dLimit && dLimit > 0;
    let next: number | null = null;
    if (!full) {
      const a = decisions.room > 0 ? store.nextUndecided() : null;
      const b = origins.free > 0 ? store.nextDeliverable(origins.saturated()) : null;
      next = a === null ? b : b === null ? a : Math.min(a, b);
    }
    return { undecided, deliverable, full, next };
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
    committer.run(claim).then(
      (r) => {
        claiming = false;
        taken = null;
        deps.onClaimed(r.undecided, r.deliverable);
        if (r.full || again) kick();
        else schedule(r.next === null ? deps.pollMs : r.next - now());
      },
      (err) => {
        claiming = false;
        // The transaction rolled back: give back the slots taken inside it.
        if (taken) {
          decisions.give(taken.undecided);
          for (const o of taken.origins) origins.give(o);
          taken = null;
        }
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
