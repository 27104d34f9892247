import type { Store } from './store.ts';

// The queue bound (QUEUE_MAX_SIZE) is checked on every accept, so it reads a counter, not
// the table. resync() re-reads the table now and then, which makes the counter exact
// again after other processes (CLI replays, admins) changed the queue.

export function createDepth(store: Store, max: number) {
  // Requests not yet finished, counting those reserved but not committed yet.
  let open = store.countOpen();
  // Reserved rows whose group commit has not happened yet (not visible in the table).
  let uncommitted = 0;
  return {
    /** Reserves room for one request; false when the queue is at its bound. */
    tryReserve(): boolean {
      if (open >= max) return false;
      open++;
      uncommitted++;
      return true;
    },
    /** The reserved row is on disk now. */
    committed(): void {
      uncommitted--;
    },
    /** The reserved row did not commit. */
    unreserve(): void {
      open--;
      uncommitted--;
    },
    finished(n: number): void {
      open -= n;
    },
    /** Synchronous: reads committed state, adds what is reserved but still in flight. */
    resync(): void {
      open = store.countOpen() + uncommitted;
    },
    get value(): number {
      return open;
    },
    max,
  };
}

export type Depth = ReturnType<typeof createDepth>;
