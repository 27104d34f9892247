import type { RequestView } from '../core/types.ts';
import type { Db } from '../queue/db.ts';
import { createReads } from '../queue/reads.ts';
import { usageError } from './usage.ts';

// Inspection and re-delivery for admins (SPEC §6 `requests`, `replay`, `stats`).

export const STATES = ['queued', 'authorizing', 'delivering', 'delivered', 'failed'] as const;

export interface RequestListRow {
  request_id: string;
  state: string;
  station_id: string;
  driver_token: string;
  decision: string | null;
  attempts: number;
  last_error: string | null;
  created_at: string;
}

/** `--state`: one of STATES, or a usage error. */
export function checkState(state: string | undefined): void {
  if (state !== undefined && !(STATES as readonly string[]).includes(state)) {
    throw usageError(`invalid --state ${JSON.stringify(state)}: expected one of ${STATES.join(', ')}`);
  }
}

/** A charging_requests row as `requests list` reads it (both engines). */
export interface ListSource {
  id: string; state: string; station_id: string; token_mask: string; decision_status: string | null; attempts: number;
  last_error: string | null; created_at: number;
}

export function listRow(r: ListSource): RequestListRow {
  return {
    request_id: r.id,
    state: r.state,
    station_id: r.station_id,
    driver_token: r.token_mask,
    decision: r.decision_status,
    attempts: r.attempts,
    last_error: r.last_error,
    created_at: new Date(r.created_at).toISOString(),
  };
}

export function requestsList(db: Db, opts: { state?: string | undefined; limit: number }): RequestListRow[] {
  checkState(opts.state);
  const rows = db
    .prepare(`SELECT id, state, station_id, token_mask, decision_status, attempts, last_error, created_at
      FROM charging_requests ${opts.state ? 'WHERE state = @state' : ''} ORDER BY created_at DESC, id DESC LIMIT @limit`)
    .all({ ...(opts.state ? { state: opts.state } : {}), limit: opts.limit }) as ListSource[];
  return rows.map(listRow);
}

export function requestShow(db: Db, id: string): RequestView | null {
  return createReads(db).get(id.toLowerCase());
}

/** Human form of `requests show`: the same facts as the JSON / the API. */
export function formatRequest(v: RequestView): string {
  const lines = [
    `request_id   ${v.request_id}`,
    `state        ${v.state}`,
    `station_id   ${v.station_id}`,
    `driver_token ${v.driver_token}`,
    `token_type   ${v.token_type}`,
    `callback_url ${v.callback_url}`,
    `client       ${v.client ?? "-"}`,
    `created_at   ${v.created_at}`,
    `decision     ${v.decision ? `${v.decision.status} (${v.decision.reason}, ${v.decision.source}, ${v.decision.latency_ms} ms, ${v.decision.decided_at})` : '-'}`,
    `attempts     ${v.delivery.attempts}${v.delivery.next_attempt_at ? `, next at ${v.delivery.next_attempt_at}` : ''}${v.delivery.finished_at ? `, finished ${v.delivery.finished_at}` : ''}`,
    `last_error   ${v.delivery.last_error ?? '-'}`,
  ];
  for (const a of v.attempts) {
    lines.push(`  #${a.attempt} ${a.at} ${a.outcome.padEnd(9)} ${a.http_status ?? a.error} ${a.duration_ms} ms`);
  }
  return lines.join('\n');
}

export interface ReplayResult {
  replayed: string[];
  /** Ids that were not replayed, with why. */
  skipped: Array<{ request_id: string; reason: string }>;
}

/**
 * Re-queues failed requests for delivery with their recorded decision (the ACL is not
 * asked again) and a fresh round of CALLBACK_MAX_ATTEMPTS. One transaction.
 */
export function replay(db: Db, sel: { ids: string[] } | { failedSince: number | null }, now = Date.now()): ReplayResult {
  const get = db.prepare('SELECT state, driver_token FROM charging_requests WHERE id = ?');
  const update = db.prepare(`UPDATE charging_requests
    SET state = 'delivering', due_at = @now, locked_at = NULL, finished_at = NULL, updated_at = @now,
        replays = replays + 1, round_start_attempts = attempts, last_error = NULL
    WHERE id = @id AND state = 'failed' AND driver_token IS NOT NULL`);
  const out: ReplayResult = { replayed: [], skipped: [] };
  db.transaction(() => {
    let ids: string[];
    if ('ids' in sel) {
      ids = sel.ids.map((x) => x.toLowerCase());
    } else {
      ids = db
        .prepare(`SELECT id FROM charging_requests WHERE state = 'failed' ${sel.failedSince !== null ? 'AND finished_at >= ?' : ''} ORDER BY finished_at`)
        .pluck()
        .all(...(sel.failedSince !== null ? [sel.failedSince] : [])) as string[];
    }
    for (const id of ids) {
      const row = get.get(id) as { state: string; driver_token: string | null } | undefined;
      if (!row) out.skipped.push({ request_id: id, reason: 'no such request' });
      else if (row.state !== 'failed') out.skipped.push({ request_id: id, reason: `state is ${row.state}, only failed requests are replayed` });
      else if (row.driver_token === null) out.skipped.push({ request_id: id, reason: 'the driver token is no longer kept' });
      else if (update.run({ id, now }).changes === 1) out.replayed.push(id);
    }
  }).immediate();
  return out;
}

export interface Stats {
  states: Record<string, number>;
  oldest_pending_age_s: number | null;
  decisions: Record<string, number>;
  delivery: Record<'last_hour' | 'last_day', { attempts: number; delivered: number; success_rate: number | null; requests_delivered: number; requests_failed: number }>;
}

type Awaitable<T> = T | Promise<T>;

/** What `stats` counts, as each engine reads it. */
export interface StatsSource {
  states(): Awaitable<Array<{ state: string; n: number }>>;
  /** created_at of the oldest open request. */
  oldest(): Awaitable<number | null>;
  decisions(): Awaitable<Array<{ s: string; n: number }>>;
  /** Callback attempts, and requests finished, since `since`. */
  window(since: number): Awaitable<{ attempts: number; delivered: number; requestsDelivered: number; requestsFailed: number }>;
}

/** The `stats` answer from its counts: one shape for both engines. */
export async function statsFrom(c: StatsSource, now: number): Promise<Stats> {
  const states: Record<string, number> = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const r of await c.states()) states[r.state] = r.n;
  const oldest = await c.oldest();
  const decisions: Record<string, number> = { allowed: 0, not_allowed: 0, unknown: 0, invalid: 0 };
  for (const r of await c.decisions()) decisions[r.s] = r.n;
  const window = async (ms: number) => {
    const w = await c.window(now - ms);
    return {
      attempts: w.attempts,
      delivered: w.delivered,
      success_rate: w.attempts ? Math.round((w.delivered / w.attempts) * 1000) / 1000 : null,
      requests_delivered: w.requestsDelivered,
      requests_failed: w.requestsFailed,
    };
  };
  return {
    states,
    oldest_pending_age_s: oldest === null ? null : Math.round((now - oldest) / 1000),
    decisions,
    delivery: { last_hour: await window(3_600_000), last_day: await window(86_400_000) },
  };
}

export function stats(db: Db, now = Date.now()): Promise<Stats> {
  return statsFrom({
    states: () => db.prepare('SELECT state, COUNT(*) AS n FROM charging_requests GROUP BY state').all() as Array<{ state: string; n: number }>,
    oldest: () => db.prepare("SELECT MIN(created_at) FROM charging_requests WHERE state IN ('queued','authorizing','delivering')").pluck().get() as number | null,
    decisions: () => db.prepare('SELECT decision_status AS s, COUNT(*) AS n FROM charging_requests WHERE decision_status IS NOT NULL GROUP BY 1')
      .all() as Array<{ s: string; n: number }>,
    window(since) {
      const a = db.prepare("SELECT COUNT(*) AS attempts, COALESCE(SUM(outcome = 'delivered'), 0) AS delivered FROM callback_attempts WHERE started_at >= ?")
        .get(since) as { attempts: number; delivered: number };
      const f = db.prepare("SELECT COALESCE(SUM(state = 'delivered'), 0) AS d, COALESCE(SUM(state = 'failed'), 0) AS f FROM charging_requests WHERE finished_at >= ?")
        .get(since) as { d: number; f: number };
      return { attempts: a.attempts, delivered: a.delivered, requestsDelivered: f.d, requestsFailed: f.f };
    },
  }, now);
}

export function formatStats(s: Stats): string {
  const lines = ['queue'];
  for (const [k, v] of Object.entries(s.states)) lines.push(`  ${k.padEnd(12)} ${v}`);
  lines.push(`  oldest pending ${s.oldest_pending_age_s === null ? '-' : `${s.oldest_pending_age_s} s`}`, 'decisions');
  for (const [k, v] of Object.entries(s.decisions)) lines.push(`  ${k.padEnd(12)} ${v}`);
  lines.push('delivery      attempts  delivered  success  requests delivered/failed');
  for (const [k, v] of Object.entries(s.delivery)) {
    lines.push(`  ${k.padEnd(11)} ${String(v.attempts).padStart(8)}  ${String(v.delivered).padStart(9)}  ${(v.success_rate === null ? '-' : `${(v.success_rate * 100).toFixed(1)}%`).padStart(7)}  ${v.requests_delivered}/${v.requests_failed}`);
  }
  return lines.join('\n');
}
