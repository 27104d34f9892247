import type { Logger } from 'pino';
import { backoffMs, classify } from '../core/retry.ts';
import type { DeliveryResult } from '../core/types.ts';
import type { AttemptRecord } from '../queue/queue.ts';
import type { Item } from './inflight.ts';

// Recording results: what an attempt means for its request (the retry policy), and
// getting a result onto disk even through a database fault.

export interface RetryPolicy {
  maxAttempts: number;
  baseMs: number;
  maxMs: number;
}

/** The attempt record for one POST that was made (SPEC §2 retry rules). */
export function attemptRecord(it: Item, r: DeliveryResult, at: number, policy: RetryPolicy, random: () => number): AttemptRecord {
  const attempt = it.attempts + 1;
  let outcome = classify(r);
  let failure: string | null = null;
  let next_due_at: number | null = null;
  if (outcome === 'retry' && attempt - it.roundStart >= policy.maxAttempts) {
    outcome = 'failed';
    failure = `max_attempts: last ${r.error ?? `HTTP ${r.http_status}`}`;
  } else if (outcome === 'retry') {
    const n = attempt - it.roundStart;
    next_due_at = at + backoffMs(n, { baseMs: policy.baseMs, maxMs: policy.maxMs }, random, r.retry_after_ms);
  } else if (outcome === 'failed') {
    failure = r.http_status === null ? `${r.error}: ${r.detail ?? ''}`.trim() : `rejected: HTTP ${r.http_status}`;
  }
  const { started_at, duration_ms, http_status, error } = r;
  return { id: it.id, attempt, started_at, duration_ms, http_status, error, outcome, next_due_at, failure };
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5000;

/**
 * Commits the write `op` makes, retrying while the database refuses (disk full, locked,
 * read-only, unreachable) instead
 * of dropping the result and letting its rows wait out their lease. The rows stay claimed
 * meanwhile, so nobody else acts on them. Gives up (null) once `giveUp()` says so.
 */
export async function commitPersistently<T>(
  op: () => Promise<T>,
  opts: { log: Logger; what: string; count: number; giveUp: () => boolean; sleep?: (ms: number) => Promise<void> },
): Promise<T | null> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let wait = FIRST_RETRY_MS;
  for (let tries = 1; ; tries++) {
    try {
      return await op();
    } catch (err) {
      if (opts.giveUp()) {
        const why = `could not persist ${opts.what}; giving up (the rows' leases bring them back)`;
        opts.log.error({ err: String(err), count: opts.count, tries }, why);
        return null;
      }
      if (tries === 1) {
        opts.log.error({ err: String(err), count: opts.count }, `could not persist ${opts.what}; retrying until the database accepts it`);
      }
      await sleep(wait);
      wait = Math.min(MAX_RETRY_MS, wait * 2);
    }
  }
}
