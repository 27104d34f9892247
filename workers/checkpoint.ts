import Database from 'better-sqlite3';

// The SQLite WAL checkpoint, off the main thread. Left to SQLite, it runs inside whichever
// commit of the service's connection crosses wal_autocheckpoint, on the event loop, and
// ends with an fsync of the database file: ~4 times a second at 500 req/s, and on a busy
// disk one of those fsyncs took 0.5 s, during which the service accepted nothing
// (docs/performance.md). Here it runs in a pool thread on a connection of its own;
// PASSIVE never waits for the writer or the readers, and the connection's synchronous=FULL
// (the default) syncs the WAL before copying and the database file after.

export interface CheckpointTask {
  dbPath: string;
  nativeBinding?: string | undefined;
}

export interface CheckpointResult {
  /** 1 when it could not run at all (another checkpoint, or a recovery, under way). */
  busy: number;
  /** Frames in the WAL, and how many of them are now in the database file. */
  log: number;
  checkpointed: number;
}

// One connection per thread and file: opening costs more than a checkpoint of a short WAL.
const connections = new Map<string, Database.Database>();

export function checkpoint(task: CheckpointTask): CheckpointResult {
  let db = connections.get(task.dbPath);
  if (!db) {
    db = new Database(task.dbPath, { fileMustExist: true, ...(task.nativeBinding ? { nativeBinding: task.nativeBinding } : {}) });
    connections.set(task.dbPath, db);
  }
  const [r] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointResult[];
  return r!;
}
