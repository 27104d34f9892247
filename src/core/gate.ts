// A task's start gate: one Int32 slot in memory shared by the main thread and the worker
// threads. The worker takes it (PENDING -> STARTED) when it begins a task; the main thread
// takes it (PENDING -> CANCELLED) when the task's start deadline passes. Exactly one side
// wins, so "cancelled before it ran" is a fact, not a guess: a cancelled task POSTs nothing.
// (piscina's own AbortSignal cannot say this: aborting a task that already runs terminates
// its whole thread, and every other callback in flight on it.)

export const PENDING = 0;
export const STARTED = 1;
export const CANCELLED = 2;

/** What a task carries across the thread boundary to find its slot. */
export interface GateRef {
  buf: SharedArrayBuffer;
  slot: number;
}

/** Worker side: true when this task may run; false when the main thread cancelled it first. */
export function enter(gate: GateRef | undefined): boolean {
  if (!gate) return true;
  return Atomics.compareExchange(new Int32Array(gate.buf), gate.slot, PENDING, STARTED) === PENDING;
}

/**
 * Wall-clock ms with sub-ms precision, the same in every thread of the process: deadlines
 * are absolute instants on this clock, so time a task spends queued counts against it.
 */
export function clockMs(): number {
  return performance.timeOrigin + performance.now();
}
