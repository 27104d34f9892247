import type { Logger } from 'pino';
import { clockMs } from '../core/gate.ts';
import { maskToken } from '../core/token.ts';
import type { AuthorizeTask, Decision, DecideTask } from '../core/types.ts';
import type { Queue } from '../queue/queue.ts';
import type { AuthorizerPlan } from './authorizer.ts';
import { upstreamMarginMs } from './authorizer.ts';
import type { DeadlineRunner, TaskOutcome } from './deadline.ts';
import type { Inflight, Item } from './inflight.ts';
import type { Admission, Deliveries } from './deliveries.ts';
import type { Lane } from './lanes.ts';
import { commitPersistently } from './record.ts';

// The decision lane. Items hold a decision slot from claim to the write of their decision.
// At most `tasks` decide tasks run at once; items beyond wait here, briefly (a decide task
// is a few local reads). A decision's deadline (AUTHORIZATION_TIMEOUT_MS) starts when its
// task is handed to a thread, and the same absolute instant bounds the upstream step, so
// time spent waiting for a thread counts and the offline rules still get their turn.

/** How long past the decision deadline a started task may stay silent before it counts as lost. */
const LOST_GRACE_MS = 2000;

export interface DecisionDeps {
  queue: Pick<Queue, 'recordDecisions' | 'decideFacts'>;
  runner: DeadlineRunner;
  inflight: Inflight;
  lane: Lane;
  /** Decide tasks running at once (the rest of the lane waits for one). */
  tasks: Lane;
  log: Logger;
  now: () => number;
  dbPath: string;
  nativeBinding: string | undefined;
  timeoutMs: number;
  authorizer: AuthorizerPlan | null;
  batchSize: number;
  stopping: () => boolean;
  /** True once a stop handed the leases back: no waiting item may start a task any more. */
  closed: () => boolean;
  observer?: { decided(d: Decision): void };
  /** The delivery lane: admits decided items before their write, takes them after. */
  deliveries: Pick<Deliveries, 'admit' | 'unadmit' | 'accept'>;
  /** A decision slot was given back: the claim loop may find work for it. */
  freed: () => void;
  /** A decided row was left in the table (its origin had no room): the claim loop must look. */
  requeued: () => void;
}

type Missing = 'timeout' | 'worker_error';

/** Decisions by item; what a task could not answer is unknown, with why, from `system`. */
function outcomes(items: Item[], o: TaskOutcome<Decision[]>, latency: number): Decision[] {
  const byId = new Map<string, Decision>();
  if (o.kind === 'done') for (const d of o.value) byId.set(d.id, d);
  const why: Missing = o.kind === 'failed' ? 'worker_error' : 'timeout';
  return items.map((it) => {
    const d = byId.get(it.id);
    if (d) return { ...d, latency_ms: latency };
    return { id: it.id, status: 'unknown', reason: why, source: 'system', latency_ms: latency };
  });
}

export function createDecisions(deps: DecisionDeps) {
  const { queue, runner, inflight, lane, tasks, log, now } = deps;
  const waiting: Item[] = [];

  /**
   * Adds what the batch reads when the threads cannot read the database (PostgreSQL); a
   * database that cannot answer leaves every item unknown, as a failing read in a thread does.
   */
  async function withFacts(task: DecideTask, run: () => Promise<TaskOutcome<Decision[]>>): Promise<TaskOutcome<Decision[]>> {
    if (!queue.decideFacts) return run();
    try {
      task.facts = await queue.decideFacts(task.items, task.authorizer !== undefined);
    } catch (err) {
      log.error({ err: String(err), count: task.items.length }, 'could not read the ACL for a batch of decisions');
      const value = task.items.map((it): Decision => ({ id: it.id, status: 'unknown', reason: 'database_error', source: 'system', latency_ms: 0 }));
      return { kind: 'done', value };
    }
    return run();
  }

  function pump(): void {
    while (waiting.length > 0 && !deps.closed() && tasks.tryTake()) {
      void run(waiting.splice(0, deps.batchSize));
    }
  }

  async function run(items: Item[]): Promise<void> {
    const started = now();
    const deadline = clockMs() + deps.timeoutMs;
    const task: DecideTask = {
      dbPath: deps.dbPath,
      nativeBinding: deps.nativeBinding,
      now: started,
      items: items.map((it) => ({ id: it.id, station_id: it.station_id, driver_token: it.driver_token ?? '', token_type: it.token_type })),
      authorizer: deps.authorizer?.decide,
    };
    let o: TaskOutcome<Decision[]>;
    try {
      o = await withFacts(task, () => runner.run<Decision[]>('decide', task, { startBy: deadline, finishBy: deadline + LOST_GRACE_MS }));
    } finally {
      tasks.give();
      pump();
    }
    const decisions = outcomes(items, o, now() - started);
    const final: Decision[] = [];
    const decided: Item[] = [];
    const referred: Item[] = [];
    const referrals: AuthorizeTask['items'] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const d = decisions[i]!;
      if (d.referral && deps.authorizer) {
        referred.push(it);
        referrals.push({ id: it.id, station_id: it.station_id, driver_token: it.driver_token ?? '', token_type: it.token_type, referral: d.referral });
      } else {
        decided.push(it);
        final.push(d);
      }
    }
    // Local and cached decisions are recorded and delivered without waiting for upstream.
    const settling = decided.length > 0 ? settle(decided, final) : Promise.resolve();
    if (referred.length > 0 && deps.authorizer) {
      const upstream: AuthorizeTask = {
        authorizer: deps.authorizer.settings,
        now: now(),
        sentAt: clockMs(),
        upstreamBy: deadline - upstreamMarginMs(deps.timeoutMs),
        items: referrals,
      };
      const deadlines = { startBy: deadline, finishBy: deadline + LOST_GRACE_MS };
      const answers = await runner.run<Decision[]>('authorize', upstream, deadlines);
      await settle(referred, outcomes(referred, answers, now() - started));
    }
    await settling;
  }

  /** Records decisions (and what they leave behind) in one commit, then delivers them. */
  async function settle(items: Item[], decisions: Decision[]): Promise<void> {
    // Delivery is admitted before the write: the decision row then says whether it keeps
    // its claim (delivered now, or waiting here for its origin) or waits in the table.
    const admissions = items.map((it) => deps.deliveries.admit(it));
    const at = now();
    const writes = items.map((it, i) => ({ decision: decisions[i]!, claim: it, keep: admissions[i] !== 'none' }));
    const requests = new Map(items.map((it) => [it.id, it]));
    const landed = await commitPersistently(
      () => queue.recordDecisions(writes, requests, at),
      { log, what: 'decisions', count: items.length, giveUp: deps.stopping },
    );
    const kept: Item[] = [];
    const keptAdmissions: Admission[] = [];
    let left = false;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const d = decisions[i]!;
      lane.give();
      if (!landed?.[i]) {
        if (landed) log.debug({ request_id: it.id }, 'claim lost before the decision was recorded; dropped');
        deps.deliveries.unadmit(it, admissions[i]!);
        inflight.finish(it);
        continue;
      }
      it.decision = d.status;
      deps.observer?.decided(d);
      log.info(
        {
          request_id: it.id, station_id: it.station_id, driver_token: maskToken(it.driver_token ?? ''),
          decision: d.status, reason: d.reason,
          source: d.source, latency_ms: d.latency_ms, ...(d.upstream_error ? { upstream_error: d.upstream_error } : {}),
        },
        'decided',
      );
      if (admissions[i] === 'none') {
        inflight.finish(it); // waits in the table until its origin has room
        left = true;
      } else {
        kept.push(it);
        keptAdmissions.push(admissions[i]!);
      }
    }
    if (kept.length) deps.deliveries.accept(kept, keptAdmissions);
    if (left) deps.requeued();
    else deps.freed();
  }

  return {
    /** Items that already hold a decision slot. */
    start(items: Item[]): void {
      for (const it of items) waiting.push(it);
      pump();
    },
  };
}
