import type { Logger } from 'pino';
import { proxySettings, type Config } from '../config.ts';
import { breaker, type BreakerState } from '../core/breaker.ts';
import type { Decision, TokenType } from '../core/types.ts';
import type { Depth } from '../queue/depth.ts';
import type { AttemptRecord, ClaimedRow, Queue } from '../queue/queue.ts';
import { authorizerPlan } from './authorizer.ts';
import { createClaimLoop } from './claims.ts';
import { createDeadlineRunner, type TaskRunner } from './deadline.ts';
import { createDecisions } from './decisions.ts';
import { createDeliveries } from './deliveries.ts';
import { createInflight, itemOf, type Item } from './inflight.ts';
import { createLane, createOrigins } from './lanes.ts';
import { signingKeys } from './sign.ts';

// The main thread's side of the pipeline, put together from parts with one job each:
// claims.ts (the claim loop), lanes.ts (capacity per lane and per callback origin),
// deadline.ts (task deadlines), decisions.ts and deliveries.ts (the two lanes' flows,
// recording through record.ts), inflight.ts (what is held). It is the only writer;
// workers only read and POST.

export type { TaskRunner } from './deadline.ts';

export interface DispatcherDeps {
  config: Readonly<Config>;
  queue: Queue;
  depth: Depth;
  pool: TaskRunner;
  log: Logger;
  nativeBinding?: string | undefined;
  now?: () => number;
  random?: () => number;
  /** Items per worker task: big enough to amortise the thread hop, small enough to spread. */
  batchSize?: number;
  /** Longest sleep between looks at the queue (CLI replays, other writers). */
  pollMs?: number;
  /** Told of every persisted decision and attempt (metrics, health). */
  observer?: Observer;
}

export interface Observer {
  decided(d: Decision): void;
  attempted(r: AttemptRecord): void;
}

/** Decide tasks per thread at once: decide is synchronous in the thread, two keep it fed. */
const DECIDE_TASKS_PER_THREAD = 2;
/** Items claimed for deciding per thread (decide tasks x batch x 2: the next batch is ready). */
const DECISION_ITEMS_PER_THREAD = 256;

/** The lanes' sizes from the configuration; the pool is sized so no task ever queues in it. */
export function laneSizes(config: Readonly<Config>) {
  const decisionItems = config.workers * DECISION_ITEMS_PER_THREAD;
  const decideTasks = config.workers * DECIDE_TASKS_PER_THREAD;
  const deliveryItems = config.workers * config.workerConcurrency;
  // Worst case one task per item (authorize tasks are bounded by the decision items).
  const tasksPerThread = Math.ceil((decideTasks + decisionItems + deliveryItems) / config.workers);
  return { decisionItems, decideTasks, deliveryItems, tasksPerThread };
}

export function createDispatcher(deps: DispatcherDeps) {
  const { config, queue, depth, log } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const batchSize = deps.batchSize ?? 64;
  const sizes = laneSizes(config);
  // A lease outlives the longest a claimed row can legitimately stay in memory (decide
  // deadline + callback deadline + slack); only a crash or a hung thread lets it expire.
  const leaseMs = config.authorizationTimeoutMs + config.callbackTimeoutMs + 30_000;
  const authorizer = authorizerPlan(config);

  let stopped = false;
  const stopping = () => stopped;
  // Set once stop() handed the leases back: items still held then are not ours to start.
  let released = false;
  const closed = () => released;
  // Rows claimed again while this process still holds them: the write that ended the held
  // copy's turn handed the row back in the same transaction as the claim (or the copy's
  // lease ran out). The new claim starts once the held copy has finished.
  const deferred = new Map<string, { item: Item; lane: 'decide' | 'deliver' }>();
  const inflight = createInflight({
    onFinish(id) {
      const next = deferred.get(id);
      if (!next) return;
      deferred.delete(id);
      inflight.add(next.item);
      if (next.lane === 'decide') decisions.start([next.item]);
      else deliveries.start([next.item]);
    },
  });
  const decisionLane = createLane(sizes.decisionItems);
  const decideTasks = createLane(sizes.decideTasks);
  const deliveryLane = createLane(sizes.deliveryItems);
  const origins = createOrigins(deliveryLane, config.callbackMaxInFlightPerOrigin);
  const runner = createDeadlineRunner(deps.pool, { slots: sizes.tasksPerThread * config.workers + 64 });

  const freed = () => claims.freed();
  const requeued = () => claims.kick();
  const deliveries = createDeliveries({
    queue, depth, runner, inflight, origins, log, now, random, freed, requeued, stopping, closed, batchSize,
    maxWaitingTotal: sizes.deliveryItems,
    timeoutMs: config.callbackTimeoutMs,
    allowedHosts: config.callbackAllowedHosts,
    proxy: proxySettings(config),
    signingKeys: signingKeys(config.callbackSigningSecret),
    policy: { maxAttempts: config.callbackMaxAttempts, baseMs: config.callbackRetryBaseMs, maxMs: config.callbackRetryMaxMs },
    ...(deps.observer ? { observer: deps.observer } : {}),
  });
  const decisions = createDecisions({
    queue, runner, inflight, log, now, freed, requeued, stopping, closed, batchSize,
    lane: decisionLane,
    tasks: decideTasks,
    dbPath: config.dbPath,
    nativeBinding: deps.nativeBinding,
    timeoutMs: config.authorizationTimeoutMs,
    authorizer,
    deliveries,
    ...(deps.observer ? { observer: deps.observer } : {}),
  });
  const claims = createClaimLoop({
    queue, origins, leaseMs, log, now,
    decisions: decisionLane,
    pollMs: deps.pollMs ?? 1000,
    onClaimed(undecided: ClaimedRow[], deliverable: ClaimedRow[]) {
      const toDecide: Item[] = [];
      for (const row of undecided) {
        const it = held(row, 'decide');
        if (it) toDecide.push(it);
      }
      const toDeliver: Item[] = [];
      for (const row of deliverable) {
        const it = held(row, 'deliver');
        if (it) toDeliver.push(it);
      }
      if (toDecide.length) decisions.start(toDecide);
      if (toDeliver.length) deliveries.start(toDeliver);
    },
  });

  /** The item for a claimed row, or null when a held copy must finish first (it keeps its slot). */
  function held(row: ClaimedRow, lane: 'decide' | 'deliver'): Item | null {
    const it = itemOf(row);
    if (inflight.add(it)) return it;
    const prev = deferred.get(it.id);
    if (prev) {
      // Claimed twice while held (a very slow thread): the newer claim supersedes.
      if (prev.lane === 'decide') decisionLane.give();
      else origins.give(prev.item.origin);
    }
    deferred.set(it.id, { item: it, lane });
    return null;
  }

  let adopted: Item[] = [];
  let adoptScheduled = false;
  function dispatchAdopted(): void {
    adoptScheduled = false;
    const batch = adopted;
    adopted = [];
    decisions.start(batch);
  }

  return {
    /** Direct hand-off from the accept path (see Handoff in src/queue/intake.ts). */
    handoff: {
      leaseMs,
      tryReserve(): boolean {
        return !stopped && decisionLane.tryTake();
      },
      cancel(): void {
        decisionLane.give();
        claims.kick();
      },
      adopt(row: {
        id: string; station_id: string; driver_token: string; token_type: TokenType; callback_url: string; origin: string; client: string | null;
      }): void {
        const it: Item = { ...row, claim: 1, attempts: 0, roundStart: 0, decision: null };
        inflight.add(it);
        adopted.push(it);
        // Every accept of one commit is adopted in the same turn: batch them per task.
        if (!adoptScheduled) {
          adoptScheduled = true;
          setImmediate(dispatchAdopted);
        }
      },
    },
    start(): void {
      stopped = false;
      released = false;
      claims.start();
    },
    /** New work was committed: look for it now rather than at the next poll. */
    kick: claims.kick,
    /** The upstream authorizer's circuit breaker, null without AUTHORIZER_URL (health, metrics). */
    authorizerBreaker(): { state: BreakerState; opened: number } | null {
      if (!authorizer) return null;
      const s = authorizer.settings;
      const b = breaker(s.breakerState, { failures: s.breakerFailures, openMs: s.breakerOpenMs });
      return { state: b.state(now()), opened: b.opened };
    },
    get inflight(): number {
      return inflight.size;
    },
    /** Lane occupancy and callback origins by class (metrics), never one figure per origin. */
    lanes() {
      return {
        deciding: decisionLane.used,
        delivering: deliveryLane.used,
        deliveryMax: deliveryLane.max,
        perOrigin: origins.perOrigin,
        origins: origins.classes(),
      };
    },
    /** For tests of the invariants: what is held, and the counters that must balance. */
    probe() {
      return {
        inflight: inflight.size, doubleFinishes: inflight.doubleFinishes, decisionSlots: decisionLane.used,
        deliverySlots: deliveryLane.used, waiting: deliveries.waiting, gates: runner.busy,
      };
    },
    /**
     * Stops claiming, waits up to graceMs for in-flight work, then hands back the leases
     * of what is still running so a restart picks it up at once. Writes of work still
     * running after that are fenced out.
     */
    async stop(graceMs: number): Promise<{ released: number }> {
      stopped = true;
      claims.stop();
      await inflight.idle(graceMs);
      released = true;
      const held = [...inflight.all(), ...[...deferred.values()].map((d) => d.item)];
      if (held.length === 0) return { released: 0 };
      return { released: await queue.release(held, now()) };
    },
  };
}

export type Dispatcher = ReturnType<typeof createDispatcher>;
