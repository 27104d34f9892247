import type { Logger } from 'pino';

// When the SQLite WAL is copied into the database file. SQLite would do it inside whichever
// commit of the service's connection crosses wal_autocheckpoint: on the event loop, ending
// with an fsync of the database file, several times a second under load; on a busy disk one
// such fsync held the event loop for 0.5 s (docs/performance.md). The service's connection
// runs with wal_autocheckpoint = 0 and this runs a PASSIVE checkpoint in a pool thread
// instead (workers/checkpoint.ts): at most one at a time, at most one per INTERVAL_MS, and
// only once MIN_CHANGES rows were written since the last one: like SQLite's own threshold
// (1,000 pages), a few writes (a start, a trickle) stay in the WAL, so the database file is
// not rewritten for them and an idle gateway leaves the disk alone.

/** Longest a written WAL waits for its checkpoint: at full load a few MB of WAL at most. */
export const CHECKPOINT_INTERVAL_MS = 250;
/** Rows written since the last checkpoint before the next one: ~200 requests' worth. */
export const CHECKPOINT_MIN_CHANGES = 1000;

export interface CheckpointerDeps {
  /** The checkpoint in a pool thread. */
  run: () => Promise<unknown>;
  /** The same on the main thread, when no thread could run it: the WAL must not grow unbounded. */
  fallback: () => Promise<unknown>;
  log: Logger;
  intervalMs?: number;
  minChanges?: number;
}

export function createCheckpointer(deps: CheckpointerDeps) {
  const intervalMs = deps.intervalMs ?? CHECKPOINT_INTERVAL_MS;
  const minChanges = deps.minChanges ?? CHECKPOINT_MIN_CHANGES;
  // Rows written since the last checkpoint began.
  let written = 0;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = false;
  let warned = false;
  let count = 0;

  function schedule(): void {
    if (timer || running || stopped) return;
    timer = setTimeout(due, intervalMs);
    timer.unref();
  }

  function due(): void {
    timer = null;
    if (stopped || written < minChanges) return;
    written = 0;
    running = deps.run().then(
      () => undefined,
      async (err: unknown) => {
        if (!warned) deps.log.warn({ err: String(err) }, 'WAL checkpoint could not run in a worker thread; running it on the main thread');
        warned = true;
        await deps.fallback().catch((e: unknown) => deps.log.error({ err: String(e) }, 'WAL checkpoint failed'));
      },
    ).finally(() => {
      count++;
      running = null;
      if (written >= minChanges) schedule();
    });
  }

  return {
    /** After each commit: `changes` rows written (0: the commit wrote nothing). */
    committed(changes: number): void {
      if (changes === 0 || stopped) return;
      written += changes;
      if (written >= minChanges) schedule();
    },
    /** Checkpoints run so far (tests). */
    get count(): number {
      return count;
    },
    /** No more checkpoints; waits for the one under way (the connection's close checkpoints last). */
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
    },
  };
}

export type Checkpointer = ReturnType<typeof createCheckpointer>;
