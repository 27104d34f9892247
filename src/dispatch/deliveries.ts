import type { Logger } from 'pino';
import { clockMs } from '../core/gate.ts';
import type { DeliverTask, DeliveryResult } from '../core/types.ts';
import type { Committer } from '../queue/committer.ts';
import type { Depth } from '../queue/depth.ts';
import type { AttemptRecord, Store } from '../queue/store.ts';
import type { DeadlineRunner } from './deadline.ts';
import type { Inflight, Item } from './inflight.ts';
import type { Origins } from './lanes.ts';
import { attemptRecord, commitPersistently, type RetryPolicy } from './record.ts';
import { webhookHeaders } from './sign.ts';

// The delivery lane: items arrive holding a slot of their origin; one task per origin
// (a hung receiver's task holds only its own items), each POST timed by the worker from
// when it starts. An attempt row is written only for a POST the worker reports as made.

/** How long past its own deadline a started task may stay silent before its thread is given up on. */
export const LOST_GRACE_MS = 5000;

export interface DeliveryDeps {
  store: Store;
  committer: Committer;
  depth: Depth;
  runner: DeadlineRunner;
  inflight: Inflight;
  origins: Origins;
  log: Logger;
  now: () => number;
  random: () => number;
  timeoutMs: number;
  allowedHosts: string[] | null;
  signingKeys: Buffer[];
  policy: RetryPolicy;
  batchSize: number;
  stopping: () => boolean;
  observer?: { attempted(r: AttemptRecord): void };
  /** A slot was given back: the claim loop may find work for it. */
  freed: () => void;
}

export function createDeliveries(deps: DeliveryDeps) {
  const { store, committer, runner, inflight, origins, log, now } = deps;

  /** Ends an item's turn here: its origin slot and its place in memory. */
  function done(items: Item[]): void {
    for (const it of items) {
      origins.give(it.origin);
      inflight.finish(it);
    }
    deps.freed();
  }

  async function run(items: Item[]): Promise<void> {
    const sentAt = now();
    const task: DeliverTask = {
      timeoutMs: deps.timeoutMs,
      allowedHosts: deps.allowedHosts,
      items: items.map((it) => {
        const body = JSON.stringify({ station_id: it.station_id, driver_token: it.driver_token, status: it.decision });
        return { id: it.id, url: it.callback_url, body, headers: webhookHeaders(deps.signingKeys, it.id, sentAt, body) };
      }),
    };
    // The POSTs' own deadline starts in the worker; this only bounds how long the task may
    // wait to start (a thread busy elsewhere) and how long a started one may stay silent.
    const startBy = clockMs() + deps.timeoutMs;
    const o = await runner.run<DeliveryResult[]>('deliver', task, { startBy, finishBy: startBy + deps.timeoutMs + LOST_GRACE_MS });
    if (o.kind === 'cancelled' || o.kind === 'failed') {
      // Nothing was POSTed (cancelled) or nobody can say (the thread died): no attempt is
      // recorded; the rows go back to the table and are delivered again.
      if (o.kind === 'failed') log.error({ err: o.error, count: items.length }, 'deliver task failed; rows handed back without an attempt');
      else log.warn({ count: items.length }, 'deliver task could not start in time; rows handed back');
      const due = o.kind === 'failed' ? now() + deps.policy.baseMs : now();
      await commitPersistently(committer, () => store.release(items, now(), due), {
        log, what: 'handed-back rows', count: items.length, giveUp: deps.stopping,
      });
      done(items);
      return;
    }
    if (o.kind === 'lost') {
      // The thread stopped answering mid-POST: whether the receiver got it is unknown. The
      // rows keep their lease and come back when it expires, as after a crash.
      log.error({ count: items.length, origin: items[0]!.origin }, 'deliver task did not answer; rows resume when their lease expires');
      done(items);
      return;
    }
    const byId = new Map<string, DeliveryResult>();
    for (const r of o.value) byId.set(r.id, r);
    const at = now();
    const made: Item[] = [];
    const records: AttemptRecord[] = [];
    for (const it of items) {
      const r = byId.get(it.id);
      if (!r) continue; // not reported as made: nothing to record
      made.push(it);
      records.push(attemptRecord(it, r, at, deps.policy, deps.random));
    }
    const landed = await commitPersistently(
      committer,
      () => {
        const ok = records.map((rec, i) => store.recordAttempt(rec, made[i]!.claim, at));
        store.recordOrigin(items[0]!.origin, records.filter((_r, i) => ok[i]), at);
        return ok;
      },
      { log, what: 'delivery results', count: records.length, giveUp: deps.stopping },
    );
    let finals = 0;
    for (let i = 0; i < made.length; i++) {
      const it = made[i]!;
      const rec = records[i]!;
      origins.attempted(it.origin, rec.outcome === 'delivered', rec.http_status !== null ? String(rec.http_status) : (rec.error ?? 'error'), at);
      if (!landed?.[i]) {
        // Fenced out: the row was released or claimed again meanwhile; not ours to record.
        if (landed) log.debug({ request_id: it.id }, 'claim lost before the attempt was recorded; dropped');
        continue;
      }
      if (rec.outcome !== 'retry') finals++;
      deps.observer?.attempted(rec);
      log.info(
        { request_id: it.id, attempt: rec.attempt, outcome: rec.outcome, http_status: rec.http_status, error: rec.error, duration_ms: rec.duration_ms, next_due_at: rec.next_due_at ?? undefined },
        rec.outcome === 'retry' ? 'delivery attempt failed; will retry' : rec.outcome === 'delivered' ? 'delivered' : 'delivery failed',
      );
    }
    deps.depth.finished(finals);
    done(items);
  }

  return {
    /** Delivers items that already hold their origin's slot, one task per origin. */
    start(items: Item[]): void {
      const byOrigin = new Map<string, Item[]>();
      for (const it of items) {
        let g = byOrigin.get(it.origin);
        if (!g) byOrigin.set(it.origin, (g = []));
        g.push(it);
      }
      for (const g of byOrigin.values()) {
        for (let i = 0; i < g.length; i += deps.batchSize) void run(g.slice(i, i + deps.batchSize));
      }
    },
  };
}
