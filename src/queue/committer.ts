import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
import type { Db } from './db.ts';

// Group commit: every write of one event-loop turn (accepts, decisions, attempts, claims)
// runs in one IMMEDIATE transaction and one fsync, so durability does not cost throughput
// (one fsync per request caps the API at ~2.5k req/s here; one per turn at ~10k).
// Each op runs in a savepoint of its own: an op that throws (a constraint, a bug) is
// rolled back alone and fails only its own promise, so unrelated accepts of the same turn
// still commit. What fails the transaction itself (COMMIT, or an error after which SQLite
// rolled the whole transaction back) fails every op of the group.

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
  /**
   * Groups committed (visible to reads of the table) whose ops are not settled yet: their
   * WAL fsync is under way. Counters kept beside the table (the queue depth) are behind the
   * table until it is 0 again.
   */
  readonly unsettled: number;
}

export interface CommitterHooks {
  /** After each commit: its ops, duration, and rows it changed (0: it wrote nothing to disk). */
  onCommit?: (ops: number, ms: number, changes: number) => void;
  /** After each failed commit (its ops were rejected with err). */
  onError?: (err: unknown, ops: number) => void;
  /**
   * The database's WAL file: when given, the connection commits with synchronous=NORMAL
   * (the WAL is written, not fsync'd, on the event loop) and the committer fsyncs the WAL
   * in libuv's thread pool, settling a group's ops only once an fsync begun after its
   * commit has finished. The main thread meanwhile serves the next requests instead of
   * waiting on the disk (at 500 req/s it spent ~35 % of its time blocked in COMMIT's
   * fsync); groups committed during an fsync share the next one.
   */
  walPath?: string;
}

export function createCommitter(db: Db, opts: CommitterHooks = {}): Committer {
  let ops: Op[] = [];
  let scheduled = false;
  // Per op of the group being committed: its return value, or what it threw (threw[i]).
  // Reused from group to group: this is the hot path, nothing is allocated per op.
  const results: unknown[] = [];
  const threw: boolean[] = [];
  // Statements of our own rather than nested db.transaction(): a failing ROLLBACK TO must
  // fail the group (the op's writes could otherwise survive), which the nested wrapper
  // would report as the op's own error.
  const savepoint = db.prepare('SAVEPOINT cg_op');
  const release = db.prepare('RELEASE cg_op');
  const rollbackTo = db.prepare('ROLLBACK TO cg_op');
  // Rows changed by this connection so far: tells a commit that wrote from an empty one
  // (which succeeds even on a full disk, so proves nothing about it).
  const totalChanges = db.prepare('SELECT total_changes()').pluck();
  const walPath = opts.walPath;
  if (walPath) db.pragma('synchronous = NORMAL');
  let walFd: number | null = null;
  let syncing = false;
  // Settlers of groups committed but not yet covered by an fsync.
  let unsynced: Array<(err: unknown) => void> = [];
  // Settlers of the groups covered by the fsync under way (a group that wrote nothing may join).
  let inFsync: Array<(err: unknown) => void> = [];
  // Set by the shutdown flush: the WAL's descriptor is closed once no fsync uses it (an open
  // descriptor would keep the file SQLite deletes on close allocated until the process ends).
  let closing = false;

  function closeWal(): void {
    if (walFd === null) return;
    try {
      closeSync(walFd);
    } catch {
      // already gone: nothing holds the file any more
    }
    walFd = null;
  }

  function syncWal(): void {
    syncing = true;
    const groups = unsynced;
    unsynced = [];
    inFsync = groups;
    let fd: number;
    try {
      // Opened once the first commit has made the file; the same inode SQLite writes.
      fd = walFd ??= openSync(walPath!, 'r');
    } catch (err) {
      syncing = false;
      inFsync = [];
      for (const settle of groups) settle(err);
      return;
    }
    fsync(fd, (err) => {
      syncing = false;
      inFsync = [];
      for (const settle of groups) settle(err);
      if (unsynced.length > 0) syncWal();
      else if (closing) closeWal();
    });
  }

  const txn = db.transaction((batch: Op[]) => {
    for (let i = 0; i < batch.length; i++) {
      savepoint.run();
      try {
        results[i] = batch[i]!.fn();
        threw[i] = false;
      } catch (err) {
        // SQLITE_FULL, IOERR, NOMEM, … can roll back the whole transaction: the ops before
        // this one are gone too, and the ones after must not run outside a transaction.
        if (!db.inTransaction) throw err;
        rollbackTo.run();
        results[i] = err;
        threw[i] = true;
      }
      release.run();
    }
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
      results.length = 0;
      opts.onError?.(err, batch.length);
      for (const op of batch) op.reject(err);
      return;
    }
    opts.onCommit?.(batch.length, performance.now() - t0, changes);
    const outcome = batch.map((_op, i) => threw[i]);
    const values = results.slice(0, batch.length);
    // Not kept until the next group: a claim's rows can be large.
    results.length = 0;
    const settle = (syncErr: unknown) => {
      if (syncErr) {
        // The group is in the WAL but not known to be on disk: nobody may act on it as durable.
        opts.onError?.(syncErr, batch.length);
        for (const op of batch) op.reject(syncErr);
        return;
      }
      for (let i = 0; i < batch.length; i++) {
        if (outcome[i]) batch[i]!.reject(values[i]);
        else batch[i]!.resolve(values[i]);
      }
    };
    if (!walPath) return settle(null);
    if (changes === 0) {
      // A group that wrote nothing (at low rates most are claims that found nothing: one
      // after every decision and every delivery) needs no fsync of its own, only those of
      // the groups before it, whose rows it may have read: settled now when they are on
      // disk, else with them. Each used to cost an fsync, and its claim waited for it.
      if (!syncing) return settle(null);
      if (unsynced.length === 0) inFsync.push(settle);
      else unsynced.push(settle);
      return;
    }
    unsynced.push(settle);
    if (!syncing) syncWal();
  }

  /** Shutdown: what was committed is fsync'd before the process goes. */
  function flushAll(): void {
    flush();
    if (!walPath) return;
    closing = true;
    if (unsynced.length > 0 || syncing) {
      let err: unknown = null;
      try {
        fsyncSync(walFd ??= openSync(walPath, 'r'));
      } catch (e) {
        err = e;
      }
      const groups = unsynced;
      unsynced = [];
      for (const settle of groups) settle(err);
    }
    if (!syncing) closeWal();
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
    flush: flushAll,
    get pending() {
      return ops.length;
    },
    get unsettled() {
      return unsynced.length + inFsync.length;
    },
  };
}
