// Circuit breaker for the upstream authorizer, its state in a SharedArrayBuffer so that
// every worker thread sees one breaker: a dead upstream costs AUTHORIZER_BREAKER_FAILURES
// slow calls in all, not that many per thread. The main thread creates the buffer and
// sends it with every task (structured clone shares, never copies, its memory).
//
//   closed --N consecutive failures--> open --openMs--> half-open --probe ok--> closed
//                                        ^------------- probe failed ------------'
// While open, callers are refused at once (they decide by the offline rules); in
// half-open exactly one caller, the probe, is let through.

const FAILURES = 0;
const OPEN_UNTIL = 1; // ms since epoch; 0 = closed
const PROBE_UNTIL = 2; // ms since epoch until which a probe is in flight; 0 = none
const OPENED = 3; // times the breaker opened (tests, logs)

export const BREAKER_BYTES = 4 * 8;

export type BreakerState = 'closed' | 'open' | 'half_open';
/** `probe`: this caller is the one half-open probe and must report its outcome. */
export type Admission = 'closed' | 'probe' | 'refused';

export interface BreakerOptions {
  /** Consecutive failed calls that open the breaker. */
  failures: number;
  /** How long it stays open before a probe is let through. */
  openMs: number;
}

export function createBreakerState(): SharedArrayBuffer {
  return new SharedArrayBuffer(BREAKER_BYTES);
}

export function breaker(state: SharedArrayBuffer, opts: BreakerOptions) {
  const a = new BigInt64Array(state);
  const big = (ms: number) => BigInt(Math.floor(ms));

  return {
    /** May a call go upstream now? probeMs bounds how long a probe may hold half-open. */
    admit(now: number, probeMs: number): Admission {
      const until = Number(Atomics.load(a, OPEN_UNTIL));
      if (until === 0) return 'closed';
      if (now < until) return 'refused';
      const probe = Atomics.load(a, PROBE_UNTIL);
      if (Number(probe) > now) return 'refused';
      // A probe that never reported (its thread died) expires, so the next caller may probe.
      return Atomics.compareExchange(a, PROBE_UNTIL, probe, big(now + probeMs)) === probe ? 'probe' : 'refused';
    },
    /** The upstream answered (whatever it said about the token). */
    success(): void {
      Atomics.store(a, FAILURES, 0n);
      Atomics.store(a, OPEN_UNTIL, 0n);
      Atomics.store(a, PROBE_UNTIL, 0n);
    },
    /** The upstream did not answer usefully (timeout, transport error, 5xx, bad answer). */
    failure(now: number, wasProbe: boolean): void {
      if (wasProbe) {
        Atomics.store(a, OPEN_UNTIL, big(now + opts.openMs));
        Atomics.store(a, PROBE_UNTIL, 0n);
        Atomics.add(a, OPENED, 1n);
        return;
      }
      // A call that started before the breaker opened and fails late changes nothing.
      if (Atomics.load(a, OPEN_UNTIL) !== 0n) return;
      const n = Atomics.add(a, FAILURES, 1n) + 1n;
      if (n >= BigInt(opts.failures) && Atomics.compareExchange(a, OPEN_UNTIL, 0n, big(now + opts.openMs)) === 0n) {
        Atomics.store(a, FAILURES, 0n);
        Atomics.add(a, OPENED, 1n);
      }
    },
    state(now: number): BreakerState {
      const until = Number(Atomics.load(a, OPEN_UNTIL));
      if (until === 0) return 'closed';
      return now < until ? 'open' : 'half_open';
    },
    /** How many times it has opened since the buffer was made. */
    get opened(): number {
      return Number(Atomics.load(a, OPENED));
    },
  };
}

export type Breaker = ReturnType<typeof breaker>;
