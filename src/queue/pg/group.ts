import type { Sql, TransactionSql } from 'postgres';
import type { CommitterHooks } from '../committer.ts';

// Group commit on PostgreSQL: every op of one event-loop turn runs in one transaction on
// one connection, its statements pipelined (sent without waiting for the previous answer),
// and settles once COMMIT answered (synchronous_commit on: the 202 means committed).
// PostgreSQL aborts the whole transaction at the first failing statement, so an op that
// fails (a bug, a constraint) fails the group: the group is then run again op by op, each
// alone, and only the op that fails again is rejected. A group whose COMMIT (or connection)
// failed is rejected whole: whether it committed is unknown, and running it again could
// write it twice. Groups of later turns start while earlier ones are in flight, up to the
// pool's size; an op is never split across connections.

export type TxOp<T> = (tx: TransactionSql) => Promise<T>;

interface Op {
  fn: TxOp<unknown>;
  resolve: (value: any) => void;
  reject: (err: unknown) => void;
}

/** Raised inside the transaction when an op failed: the group rolls back and runs op by op. */
class OpFailed extends Error {
  readonly first: unknown;
  constructor(first: unknown) {
    super('an op of the group failed');
    this.first = first;
  }
}

export interface PgGroup {
  run<T>(fn: TxOp<T>): Promise<T>;
  /** Resolves once every group started so far has settled. */
  drain(): Promise<void>;
  readonly pending: number;
}

/**
 * afterOps runs in each group's transaction after its ops (the NOTIFY that wakes other
 * instances, when an op asked for one).
 */
export function createPgGroup(sql: Sql, hooks: CommitterHooks = {}, afterOps?: (tx: TransactionSql) => Promise<void>): PgGroup {
  let ops: Op[] = [];
  let scheduled = false;
  const inFlight = new Set<Promise<void>>();

  async function commit(batch: Op[]): Promise<void> {
    const t0 = performance.now();
    let results: PromiseSettledResult<unknown>[];
    try {
      results = await sql.begin(async (tx) => {
        const settled = await Promise.allSettled(batch.map((op) => op.fn(tx)));
        const failed = settled.find((r) => r.status === 'rejected');
        if (failed) throw new OpFailed(failed.reason);
        if (afterOps) await afterOps(tx);
        return settled;
      });
    } catch (err) {
      if (err instanceof OpFailed && batch.length > 1) {
        // Rolled back before COMMIT: nothing of the group was written; isolate the culprit.
        await Promise.all(batch.map((op) => commit([op])));
        return;
      }
      // One op alone, failing: its own error. Anything else failed the transaction itself.
      const why = err instanceof OpFailed ? err.first : err;
      if (!(err instanceof OpFailed)) hooks.onError?.(why, batch.length);
      for (const op of batch) op.reject(why);
      return;
    }
    // Rows changed are not counted here (PostgreSQL reports no disk-full like SQLite does).
    hooks.onCommit?.(batch.length, performance.now() - t0, 1);
    for (let i = 0; i < batch.length; i++) {
      const r = results[i]!;
      if (r.status === 'fulfilled') batch[i]!.resolve(r.value);
    }
  }

  function flush(): void {
    scheduled = false;
    if (ops.length === 0) return;
    const batch = ops;
    ops = [];
    const p = commit(batch).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }

  return {
    run<T>(fn: TxOp<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        ops.push({ fn, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
    async drain(): Promise<void> {
      flush();
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    get pending() {
      return ops.length;
    },
  };
}
