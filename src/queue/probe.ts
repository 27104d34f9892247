import type { Db } from './db.ts';

/**
 * A check of the database as the next write would meet it that writes nothing: it reads a
 * page, takes the write lock (fails when another process holds it past the busy timeout),
 * starts a change (fails on a read-only file or connection), and rolls back. It cannot
 * see a full disk; the outcome of real commits tells that (health.ts createWriteWatch).
 */
export function createProbe(db: Db): () => void {
  const read = db.prepare('SELECT COUNT(*) FROM schema_migrations');
  const begin = db.prepare('BEGIN IMMEDIATE');
  const change = db.prepare('UPDATE schema_migrations SET version = version WHERE 0');
  const rollback = db.prepare('ROLLBACK');
  return () => {
    read.get();
    // Only the group committer opens transactions, synchronously; never inside one of its own.
    if (db.inTransaction) return;
    begin.run();
    try {
      change.run();
    } finally {
      rollback.run();
    }
  };
}
