// Capacity of the dispatcher, in two lanes that never share a slot, so decisions never
// wait behind deliveries (SPEC §2 "Isolation"):
// - decisions: items claimed for deciding (local list, cache, upstream);
// - deliveries: callback POSTs in flight, bounded in total and per callback origin, so one
//   receiver that hangs holds at most its own share and every other origin goes on.
// Rows that find no room stay in the database; nothing waits in memory for a slot.
// Invariant (tested): every take is given back exactly once; counts never go negative.

export interface Lane {
  readonly max: number;
  readonly used: number;
  readonly room: number;
  /** Takes n slots if all are free. */
  tryTake(n?: number): boolean;
  give(n?: number): void;
}

export function createLane(max: number): Lane {
  let used = 0;
  return {
    max,
    get used() {
      return used;
    },
    get room() {
      return Math.max(0, max - used);
    },
    tryTake(n = 1): boolean {
      if (used + n > max) return false;
      used += n;
      return true;
    },
    give(n = 1): void {
      if (n > used) throw new Error(`lane gave back ${n} of ${used} slots`);
      used -= n;
    },
  };
}

/** What the dispatcher knows of one callback origin (scheme://host:port). */
export interface OriginState {
  inFlight: number;
  consecutiveFailures: number;
  /** Its last attempt was delivered: it may borrow idle lane capacity. */
  lastDelivered: boolean;
  /** HTTP status of the last answer, or the error code when there was none. */
  lastStatus: string | null;
  lastAt: number;
}

/**
 * Deliveries in flight per origin, inside the delivery lane. An origin takes at most
 * `perOrigin` slots (never more than half the lane, so a small lane still leaves room for
 * others). A proven origin, whose last attempt was delivered, may borrow up to half the
 * lane: one busy receiver is then not capped at perOrigin / round trip. The moment an
 * attempt of it fails (a timeout included) it is back to perOrigin; a receiver that has
 * never delivered, or that hangs from the start, never gets more than perOrigin.
 * Idle origins are forgotten once many are remembered; the map stays bounded.
 */
export function createOrigins(lane: Lane, configuredPerOrigin: number, opts: { maxRemembered?: number } = {}) {
  const half = Math.max(1, Math.floor(lane.max / 2));
  const perOrigin = Math.min(Math.max(1, configuredPerOrigin), half);
  const proven = (s: OriginState | undefined) => s !== undefined && s.lastDelivered;
  const limitOf = (s: OriginState | undefined) => (proven(s) ? half : perOrigin);
  const maxRemembered = opts.maxRemembered ?? 10_000;
  const origins = new Map<string, OriginState>();

  function state(origin: string): OriginState {
    let s = origins.get(origin);
    if (!s) {
      s = { inFlight: 0, consecutiveFailures: 0, lastDelivered: false, lastStatus: null, lastAt: 0 };
      origins.set(origin, s);
    }
    return s;
  }

  return {
    perOrigin,
    /** Slots this origin may still take now (lane and origin bound both). */
    room(origin: string): number {
      const s = origins.get(origin);
      return Math.max(0, Math.min(limitOf(s) - (s?.inFlight ?? 0), lane.room));
    },
    tryTake(origin: string, n = 1): boolean {
      const s = state(origin);
      if (s.inFlight + n > limitOf(s) || !lane.tryTake(n)) return false;
      s.inFlight += n;
      return true;
    },
    give(origin: string, n = 1): void {
      const s = origins.get(origin);
      if (!s || s.inFlight < n) throw new Error(`origin ${origin} gave back ${n} of ${s?.inFlight ?? 0} slots`);
      s.inFlight -= n;
      lane.give(n);
    },
    /** Records the outcome of an attempt (for `receivers`, /metrics). */
    attempted(origin: string, delivered: boolean, status: string, at: number): void {
      const s = state(origin);
      s.consecutiveFailures = delivered ? 0 : s.consecutiveFailures + 1;
      s.lastDelivered = delivered;
      s.lastStatus = status;
      s.lastAt = at;
      if (origins.size > maxRemembered) forgetIdle();
    },
    /** Origins at their bound: the delivery claim skips their rows. */
    saturated(): string[] {
      const out: string[] = [];
      for (const [o, s] of origins) if (s.inFlight >= limitOf(s)) out.push(o);
      return out;
    },
    /** Counts of remembered origins by class: never one series per origin. */
    classes(): { saturated: number; failing: number; healthy: number } {
      let saturated = 0;
      let failing = 0;
      let healthy = 0;
      for (const s of origins.values()) {
        if (s.inFlight >= limitOf(s)) saturated++;
        else if (s.consecutiveFailures > 0) failing++;
        else if (s.lastStatus !== null || s.inFlight > 0) healthy++;
      }
      return { saturated, failing, healthy };
    },
    get(origin: string): Readonly<OriginState> | undefined {
      return origins.get(origin);
    },
    get inFlight(): number {
      return lane.used;
    },
    /** Free slots in the delivery lane as a whole. */
    get free(): number {
      return lane.room;
    },
  };

  function forgetIdle(): void {
    // Oldest first (Map keeps insertion order); only origins with nothing in flight.
    for (const [o, s] of origins) {
      if (origins.size <= maxRemembered / 2) break;
      if (s.inFlight === 0) origins.delete(o);
    }
  }
}

export type Origins = ReturnType<typeof createOrigins>;
