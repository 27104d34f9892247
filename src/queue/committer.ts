import type { Db } from './db.ts';

// Group commit: every write of one event-loop turn (accepts, decisions, attempts, claims)
// runs in one IMMEDIATE transaction and one fsync, so durability does not cost throughput
// (one fsync per request caps the API at ~2.5k req/s here; one per turn at ~10k).

interface Op {
  fn: () => unknown;
  resolve: (value: any) => void;
  reject: (err: unknown) => void;
}

export interface Committer {
  /** Runs fn inside the next group transaction; settles once that transaction is on disk. */
  run<T>(fn: () => T): Promise<T>;
  /** Commits what is pending now (shutdown). */
  flush(): void;
  /** Ops waiting for the next commit. */
  readonly pending: number;
}

export interface CommitterHooks {
  /** After each commit: its ops, duration, and rows it changed (0: it wrote nothing to disk). */
  onCommit?: (ops: number, ms: number, changes: number) => void;
  /** After each failed commit (its ops were rejected with err). */
  onError?: (err: unknown, ops: number) => void;
}

export function createCommitter(db: Db, opts: CommitterHooks = {}): Committer {
  let ops: Op[] = [];
  let scheduled = false;
  const results: unknown[] = [];
  // Rows changed by this connection so far: tells a commit that wrote from an empty one
  // (which succeeds even on a full disk, so proves nothing about it).
  const totalChanges = db.prepare('SELECT total_changes()').pluck();

  const txn = db.transaction((batch: Op[]) => {
    results.length = 0;
    for (const op of batch) results.push(op.fn());
  });

  function flush(): void {
    scheduled = false;
    if (ops.length === 0) return;
    const batch = ops;
    ops = [];
    const t0 = performance.now();
    let changes: number;
    try {
      // Inside the try: on a closed connection (a late op after shutdown) every call throws.
      const before = totalChanges.get() as number;
      txn.immediate(batch);
      changes = (totalChanges.get() as number) - before;
    } catch (err) {
      opts.onError?.(err, batch.length);
      for (const op of batch) op.reject(err);
      return;
    }
    opts.onCommit?.(batch.length, performance.now() - t0, changes);
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]);
  }

  return {
    run<T>(fn: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        ops.push({ fn, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          // setImmediate runs after this turn's I/O callbacks: every request parsed in
          // this turn joins the same transaction.
          setImmediate(flush);
        }
      });
    },
    flush,
    get pending() {
      return ops.length;
    },
  };
}
