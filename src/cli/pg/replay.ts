import type { Sql } from 'postgres';
import { WAKE_CHANNEL } from '../../queue/pg/queue.ts';
import type { ReplaySelection } from '../admin.ts';
import type { ReplayResult } from '../requests.ts';

// `chargegate replay` on PostgreSQL, beside running instances: each failed row goes back to
// 'delivering', unlocked and due now, with a fresh round of attempts (as on SQLite,
// src/cli/requests.ts), in one transaction that NOTIFYs the instances' wake-up channel,
// so one of them claims it at once (FOR UPDATE SKIP LOCKED, like any due row). The update
// itself checks state = 'failed': two admins replaying at once, or retention deleting the
// row meanwhile, leave it replayed once or reported, never twice.

/** Whatever an instance's id is, this is not one: every instance wakes on it. */
const FROM_CLI = 'cli';

const SET = `state = 'delivering', due_at = $1::bigint, locked_at = NULL, locked_by = NULL, finished_at = NULL,
  updated_at = $1::bigint, replays = replays + 1, round_start_attempts = attempts, last_error = NULL`;

export function pgReplay(sql: Sql, sel: ReplaySelection, now: number): Promise<ReplayResult> {
  return sql.begin(async (tx) => {
    const out: ReplayResult = { replayed: [], skipped: [] };
    if ('ids' in sel) {
      const ids = [...new Set(sel.ids.map((x) => x.toLowerCase()))];
      const done = new Set((await tx.unsafe<Array<{ id: string }>>(`UPDATE charging_requests SET ${SET}
          WHERE id = ANY($2::text[]) AND state = 'failed' AND driver_token IS NOT NULL RETURNING id`, [now, ids])).map((r) => r.id));
      const rest = ids.filter((id) => !done.has(id));
      const found = new Map((await tx<Array<{ id: string; state: string; gone: boolean }>>`SELECT id, state, driver_token IS NULL AS gone
          FROM charging_requests WHERE id = ANY(${rest}::text[])`).map((r) => [r.id, r]));
      for (const id of ids) {
        const row = found.get(id);
        if (done.has(id)) out.replayed.push(id);
        else if (!row) out.skipped.push({ request_id: id, reason: 'no such request' });
        else if (row.state !== 'failed') out.skipped.push({ request_id: id, reason: `state is ${row.state}, only failed requests are replayed` });
        else out.skipped.push({ request_id: id, reason: 'the driver token is no longer kept' });
      }
    } else {
      // Oldest failure first, as on SQLite; each row is checked again by the update.
      const rows = await tx.unsafe<Array<{ id: string; kept: boolean; done: boolean }>>(`WITH c AS (
          SELECT id, finished_at, driver_token IS NOT NULL AS kept FROM charging_requests
          WHERE state = 'failed' AND ($2::bigint IS NULL OR finished_at >= $2::bigint)),
        u AS (UPDATE charging_requests r SET ${SET} FROM c
          WHERE r.id = c.id AND c.kept AND r.state = 'failed' AND r.driver_token IS NOT NULL RETURNING r.id)
        SELECT c.id, c.kept, u.id IS NOT NULL AS done FROM c LEFT JOIN u ON u.id = c.id ORDER BY c.finished_at, c.id COLLATE "C"`,
      [now, sel.failedSince]);
      for (const r of rows) {
        if (r.done) out.replayed.push(r.id);
        else if (!r.kept) out.skipped.push({ request_id: r.id, reason: 'the driver token is no longer kept' });
        else out.skipped.push({ request_id: r.id, reason: 'no longer failed: replayed or removed meanwhile by another process' });
      }
    }
    if (out.replayed.length > 0) await tx`SELECT pg_notify(${WAKE_CHANNEL}, ${FROM_CLI})`;
    return out;
  });
}
