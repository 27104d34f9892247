import type { Logger } from 'pino';
import { clockMs } from '../core/gate.ts';
import type { DeliverTask, DeliveryResult, ProxySettings } from '../core/types.ts';
import type { Depth } from '../queue/depth.ts';
import type { AttemptRecord, Queue } from '../queue/queue.ts';
import type { DeadlineRunner } from './deadline.ts';
import type { Inflight, Item } from './inflight.ts';
import type { Origins } from './lanes.ts';
import { attemptRecord, commitPersistently, type RetryPolicy } from './record.ts';
import { webhookHeaders } from './sign.ts';

// The delivery lane: one task per origin (a hung receiver's task holds only its own
// items), each POST timed by the worker from when it starts. An attempt row is written
// only for a POST the worker reports as made.
// A decided item either takes a slot of its origin at once, or waits here for one (at most
// the per-origin bound per origin, and the lane's size in all, so memory stays bounded), or
// goes back to the table. Waiting here spares the common single-receiver site a claim
// transaction per request; the table takes what a saturated or hung origin cannot.

/** How a decided item was admitted: a slot now, a place in its origin's wait list, or neither. */
export type Admission = 'slot' | 'wait' | 'none';

const MESSAGE = { retry: 'delivery attempt failed; will retry', delivered: 'delivered', failed: 'delivery failed' } as const;

/** How long past its own deadline a started task may stay silent before its thread is given up on. */
export const LOST_GRACE_MS = 5000;

export interface DeliveryDeps {
  queue: Pick<Queue, 'recordAttempts' | 'release'>;
  depth: Depth;
  runner: DeadlineRunner;
  inflight: Inflight;
  origins: Origins;
  log: Logger;
  now: () => number;
  random: () => number;
  timeoutMs: number;
  allowedHosts: string[] | null;
  /** Outbound proxies (src/config.ts proxySettings); null = direct. */
  proxy?: ProxySettings | null;
  signingKeys: Buffer[];
  policy: RetryPolicy;
  batchSize: number;
  /** Decided items that may wait in memory for their origin, over all origins. */
  maxWaitingTotal: number;
  stopping: () => boolean;
  /** True once a stop handed the leases back: nothing held may start a POST any more. */
  closed: () => boolean;
  observer?: { attempted(r: AttemptRecord): void };
  /** A slot was given back: the claim loop may find work for it. */
  freed: () => void;
  /** Rows went back to the table (handed back, or a retry due later): the claim loop must look. */
  requeued: () => void;
}

export function createDeliveries(deps: DeliveryDeps) {
  const { queue, runner, inflight, origins, log, now } = deps;
  // Items waiting in memory for a slot of their origin, and places promised (admitted,
  // decision not committed yet) counted with them.
  const waitLists = new Map<string, Item[]>();
  const places = new Map<string, number>();
  let placesTotal = 0;
  const maxWaiting = origins.perOrigin;
  const maxWaitingTotal = deps.maxWaitingTotal;

  function takePlace(origin: string): boolean {
    const n = places.get(origin) ?? 0;
    if (n >= maxWaiting || placesTotal >= maxWaitingTotal) return false;
    places.set(origin, n + 1);
    placesTotal++;
    return true;
  }

  function givePlace(origin: string): void {
    const n = places.get(origin)!;
    if (n <= 1) places.delete(origin);
    else places.set(origin, n - 1);
    placesTotal--;
  }

  /** Starts what waits for this origin, as far as its slots allow. */
  function pump(origin: string): void {
    const list = waitLists.get(origin);
    if (!list || deps.closed()) return;
    const batch: Item[] = [];
    while (list.length > 0 && batch.length < deps.batchSize && origins.tryTake(origin)) {
      const it = list.shift()!;
      givePlace(origin);
      batch.push(it);
    }
    if (list.length === 0) waitLists.delete(origin);
    if (batch.length) void run(batch);
  }

  /** The POSTs are over: their slots go to whoever waits for the origin, else back to the lane. */
  function slotsFree(items: Item[]): void {
    for (const it of items) origins.give(it.origin);
    pump(items[0]!.origin);
    deps.freed();
  }

  function finish(items: Item[]): void {
    for (const it of items) inflight.finish(it);
  }

  /** Items that hold their origin's slot: one task per origin, batchSize items at most. */
  function startHolding(items: Item[]): void {
    const byOrigin = new Map<string, Item[]>();
    for (const it of items) append(byOrigin, it.origin, it);
    for (const g of byOrigin.values()) {
      for (let i = 0; i < g.length; i += deps.batchSize) void run(g.slice(i, i + deps.batchSize));
    }
  }

  async function run(items: Item[]): Promise<void> {
    const sentAt = now();
    const task: DeliverTask = {
      timeoutMs: deps.timeoutMs,
      allowedHosts: deps.allowedHosts,
      proxy: deps.proxy ?? null,
      items: items.map((it) => {
        const body = JSON.stringify({ station_id: it.station_id, driver_token: it.driver_token, status: it.decision });
        return { id: it.id, url: it.callback_url, body, headers: webhookHeaders(deps.signingKeys, it.id, sentAt, body) };
      }),
    };
    // The POSTs' own deadline starts in the worker; this only bounds how long the task may
    // wait to start (a thread busy elsewhere) and how long a started one may stay silent.
    const startBy = clockMs() + deps.timeoutMs;
    const finishBy = startBy + deps.timeoutMs + LOST_GRACE_MS;
    const o = await runner.run<DeliveryResult[]>('deliver', task, { startBy, finishBy });
    // No POST of this task is in flight any more (or its thread is given up on): the slots
    // are free before the results are on disk, whose commit they need not wait for.
    slotsFree(items);
    if (o.kind === 'cancelled' || o.kind === 'failed') {
      // Nothing was POSTed (cancelled) or nobody can say (the thread died): no attempt is
      // recorded; the rows go back to the table and are delivered again.
      const count = items.length;
      if (o.kind === 'failed') log.error({ err: o.error, count }, 'deliver task failed; rows handed back without an attempt');
      else log.warn({ count }, 'deliver task could not start in time; rows handed back');
      const due = o.kind === 'failed' ? now() + deps.policy.baseMs : now();
      // Out of memory first: a claim in the same transaction as the release takes the row as new.
      finish(items);
      await commitPersistently(() => queue.release(items, now(), due), {
        log, what: 'handed-back rows', count: items.length, giveUp: deps.stopping,
      });
      deps.requeued();
      return;
    }
    if (o.kind === 'lost') {
      // The thread stopped answering mid-POST: whether the receiver got it is unknown. The
      // rows keep their lease and come back when it expires, as after a crash.
      const at = { count: items.length, origin: items[0]!.origin };
      log.error(at, 'deliver task did not answer; rows resume when their lease expires');
      finish(items);
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
    const claims = made.map((it) => it.claim);
    const landed = await commitPersistently(
      () => queue.recordAttempts(items[0]!.origin, records, claims, at),
      { log, what: 'delivery results', count: records.length, giveUp: deps.stopping },
    );
    const finals: Array<string | null> = [];
    let retries = false;
    for (let i = 0; i < made.length; i++) {
      const it = made[i]!;
      const rec = records[i]!;
      const status = rec.http_status !== null ? String(rec.http_status) : (rec.error ?? 'error');
      origins.attempted(it.origin, rec.outcome === 'delivered', status, at);
      if (!landed?.[i]) {
        // Fenced out: the row was released or claimed again meanwhile; not ours to record.
        if (landed) log.debug({ request_id: it.id }, 'claim lost before the attempt was recorded; dropped');
        continue;
      }
      if (rec.outcome !== 'retry') finals.push(it.client);
      else retries = true;
      deps.observer?.attempted(rec);
      log.info(
        {
          request_id: it.id, attempt: rec.attempt, outcome: rec.outcome, http_status: rec.http_status, error: rec.error,
          duration_ms: rec.duration_ms, next_due_at: rec.next_due_at ?? undefined,
        },
        MESSAGE[rec.outcome],
      );
    }
    deps.depth.finished(finals);
    finish(items);
    // The claim loop learns the retry's due time (its timer may be set for later).
    if (retries) deps.requeued();
  }

  return {
    /** Admits a decided item before its decision is written: a slot, a wait place, or none. */
    admit(it: Item): Admission {
      if (origins.tryTake(it.origin)) return 'slot';
      return takePlace(it.origin) ? 'wait' : 'none';
    },
    /** Gives back what admit() took, for an item whose decision did not land. */
    unadmit(it: Item, a: Admission): void {
      if (a === 'slot') origins.give(it.origin);
      else if (a === 'wait') givePlace(it.origin);
    },
    /** Items whose decision landed: delivered now (slot) or queued for their origin (wait). */
    accept(items: Item[], admissions: Admission[]): void {
      const ready: Item[] = [];
      for (let i = 0; i < items.length; i++) {
        const it = items[i]!;
        if (admissions[i] === 'slot') ready.push(it);
        else if (admissions[i] === 'wait') append(waitLists, it.origin, it);
      }
      startHolding(ready);
      // A slot may have come free while the decisions were being written.
      for (let i = 0; i < items.length; i++) if (admissions[i] === 'wait') pump(items[i]!.origin);
    },
    /** Delivers items that already hold their origin's slot, one task per origin. */
    start: startHolding,
    /** Items waiting in memory for a slot (tests: balances to 0). */
    get waiting(): number {
      return placesTotal;
    },
  };
}

export type Deliveries = ReturnType<typeof createDeliveries>;

function append<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
