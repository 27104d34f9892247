import type { DecisionStatus, TokenType } from '../core/types.ts';
import type { ClaimedRow } from '../queue/store.ts';

// The requests this process holds a claim on, from claim (or hand-off) to the write that
// ends its turn. Invariant (tested): every item that enters finishes exactly once.

export interface Item {
  id: string;
  /** The claim_count this process claimed the row with: the fencing token of its writes. */
  claim: number;
  station_id: string;
  driver_token: string | null;
  token_type: TokenType;
  callback_url: string;
  origin: string;
  /** The API client that sent it (its share of the queue bound), null without keys. */
  client: string | null;
  attempts: number;
  /** attempts before the current replay round. */
  roundStart: number;
  decision: DecisionStatus | null;
}

export function itemOf(row: ClaimedRow): Item {
  return {
    id: row.id,
    claim: row.claim_count,
    station_id: row.station_id,
    driver_token: row.driver_token,
    token_type: row.token_type,
    callback_url: row.callback_url,
    origin: row.origin,
    client: row.client,
    attempts: row.attempts,
    roundStart: row.round_start_attempts,
    decision: row.decision_status,
  };
}

export function createInflight(opts: { onFinish?: (id: string) => void } = {}) {
  const items = new Map<string, Item>();
  let idleWaiters: Array<() => void> = [];
  let doubleFinishes = 0;

  return {
    /** False when the row is already held (a lease outlived our own deadline): skip it. */
    add(item: Item): boolean {
      if (items.has(item.id)) return false;
      items.set(item.id, item);
      return true;
    },
    has(id: string): boolean {
      return items.has(id);
    },
    finish(item: Item): void {
      if (items.get(item.id) !== item) {
        doubleFinishes++;
        return;
      }
      items.delete(item.id);
      opts.onFinish?.(item.id);
      if (items.size === 0 && idleWaiters.length) {
        const w = idleWaiters;
        idleWaiters = [];
        for (const fn of w) fn();
      }
    },
    /** Resolves when nothing is held, or after ms, whichever comes first. */
    idle(ms: number): Promise<void> {
      if (items.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        idleWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
    all(): Item[] {
      return [...items.values()];
    },
    get size(): number {
      return items.size;
    },
    /** Items finished more than once, or finished without being held (a bug; tests assert 0). */
    get doubleFinishes(): number {
      return doubleFinishes;
    },
  };
}

export type Inflight = ReturnType<typeof createInflight>;
