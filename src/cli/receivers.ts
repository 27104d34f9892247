import type { Db } from '../queue/db.ts';

// `chargegate receivers`: per callback origin, what is in flight, what waits, and how its
// last attempts went, read from the `receivers` view (the same answer `sqlite3` gives).

export interface ReceiverRow {
  origin: string;
  in_flight: number;
  queued: number;
  last_status: string | null;
  consecutive_failures: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_delivered_at: string | null;
  attempts: number;
  delivered: number;
}

/** Failing and busy receivers first. `all`: also those with nothing open and no failures. */
export function receivers(db: Db, opts: { all?: boolean; limit?: number } = {}): ReceiverRow[] {
  const where = opts.all ? '' : 'WHERE in_flight > 0 OR queued > 0 OR consecutive_failures > 0';
  return db.prepare(`SELECT * FROM receivers ${where} LIMIT ?`).all(opts.limit ?? 1000) as ReceiverRow[];
}
