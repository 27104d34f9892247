import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { maskToken } from '../core/token.ts';
import { backoffMs, classify } from '../core/retry.ts';
import type { AuthorizeTask, Decision, DecideTask, DeliverTask, DeliveryResult, DecisionStatus } from '../core/types.ts';
import type { AuthStore } from '../queue/authcache.ts';
import type { Committer } from '../queue/committer.ts';
import type { AttemptRecord, ClaimedRow, Store } from '../queue/store.ts';
import type { Depth } from '../queue/depth.ts';
import { authorizerPlan, upstreamBudgetMs } from './authorizer.ts';
import { breaker, type BreakerState } from '../core/breaker.ts';
import { signingKeys, webhookHeaders } from './sign.ts';

// The main thread's side of the pipeline: claims due rows in batches (leases), feeds
// decide/deliver tasks to the worker pool, and records what comes back through the
// group committer. It is the only writer; workers only read and POST.

export interface TaskRunner {
  run(task: unknown, opts: { name: string }): Promise<unknown>;
}

export interface DispatcherDeps {
  config: Readonly<Config>;
  store: Store;
  committer: Committer;
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
  /** Writes upstream answers, cache recency and unknown-token sightings with the decisions. */
  authStore?: AuthStore;
}

export interface Observer {
  decided(d: Decision): void;
  attempted(r: AttemptRecord): void;
}

interface InFlight {
  id: string;
  station_id: string;
  driver_token: string | null;
  callback_url: string;
  attempts: number;
  roundStart: number;
  decision: DecisionStatus | null;
}

const TIMED_OUT = Symbol('timeout');

export function createDispatcher(deps: DispatcherDeps) {
  const { config, store, committer, depth, pool, log } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const batchSize = deps.batchSize ?? 64;
  const pollMs = deps.pollMs ?? 1000;
  // Items (not tasks) in flight. Tasks carry up to batchSize items, so a few items per task
  // slot keeps the threads fed with full batches while a backlog drains; memory and the
  // number of leases held stay bounded by this figure.
  const capacity = config.workers * config.workerConcurrency * 4;
  // A lease outlives the longest a claimed row can legitimately stay in memory (decide
  // deadline + callback deadline + slack); only a crash or a hung thread lets it expire.
  const leaseMs = config.authorizationTimeoutMs + config.callbackTimeoutMs + 30_000;
  const signingKeysList = signingKeys(config.callbackSigningSecret);
  const authorizer = authorizerPlan(config);

  const inflight = new Map<string, InFlight>();
  // Slots promised to accepts whose rows are being committed pre-claimed.
  let reserved = 0;
  let adopted: InFlight[] = [];
  let adoptScheduled = false;
  let claiming = false;
  let stopped = false;
  let wakeTimer: NodeJS.Timeout | null = null;
  let idleWaiters: Array<() => void> = [];

  function kick(): void {
    if (stopped || claiming) return;
    const room = capacity - inflight.size - reserved;
    if (room <= 0) return;
    claiming = true;
    committer.run(() => store.claim(now(), Math.min(room, 1024), leaseMs)).then(
      (rows) => {
        claiming = false;
        onClaimed(rows, Math.min(room, 1024));
      },
      (err) => {
        claiming = false;
        log.error({ err: String(err) }, 'claim failed; retrying');
        schedule(pollMs);
      },
    );
  }

  function schedule(ms: number): void {
    if (stopped) return;
    if (wakeTimer) clearTimeout(wakeTimer);
    wakeTimer = setTimeout(() => {
      wakeTimer = null;
      kick();
    }, Math.max(0, Math.min(ms, pollMs)));
  }

  function onClaimed(rows: ClaimedRow[], limit: number): void {
    const toDecide: InFlight[] = [];
    const toDeliver: InFlight[] = [];
    for (const row of rows) {
      // Only if a lease outlived our own deadline; the running copy will finish it.
      if (inflight.has(row.id)) continue;
      const item: InFlight = {
        id: row.id,
        station_id: row.station_id,
        driver_token: row.driver_token,
        callback_url: row.callback_url,
        attempts: row.attempts,
        roundStart: row.round_start_attempts,
        decision: row.decision_status,
      };
      inflight.set(row.id, item);
      (item.decision === null ? toDecide : toDeliver).push(item);
    }
    for (let i = 0; i < toDecide.length; i += batchSize) void decide(toDecide.slice(i, i + batchSize));
    for (let i = 0; i < toDeliver.length; i += batchSize) void deliver(toDeliver.slice(i, i + batchSize));
    if (rows.length >= limit) {
      kick();
    } else {
      const next = store.nextDue();
      if (next !== null) schedule(next - now());
      else schedule(pollMs);
    }
  }

  function dispatchAdopted(): void {
    adoptScheduled = false;
    const batch = adopted;
    adopted = [];
    for (let i = 0; i < batch.length; i += batchSize) void decide(batch.slice(i, i + batchSize));
  }

  function finish(items: InFlight[]): void {
    for (const it of items) inflight.delete(it.id);
    if (inflight.size === 0 && idleWaiters.length) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const fn of w) fn();
    }
    kick();
  }

  /**
   * Runs one task against a deadline enforced here, not by aborting the task: piscina
   * aborts a running task by terminating its thread, which would take the thread's other
   * tasks with it. Resolves with TIMED_OUT, or null when the task failed.
   */
  async function runBefore<T>(name: string, task: unknown, ms: number): Promise<T | typeof TIMED_OUT | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        pool.run(task, { name }) as Promise<T>,
        new Promise<typeof TIMED_OUT>((resolve) => {
          timer = setTimeout(resolve, Math.max(0, ms), TIMED_OUT);
        }),
      ]);
    } catch (err) {
      log.error({ err: String(err) }, `${name} task failed`);
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Results by item, with unknown/timeout or unknown/worker_error (source system) for the missing. */
  function outcomes(items: InFlight[], result: Decision[] | typeof TIMED_OUT | null, latency: number): Decision[] {
    const byId = new Map<string, Decision>();
    if (Array.isArray(result)) for (const d of result) byId.set(d.id, d);
    return items.map((it) => {
      const d = byId.get(it.id);
      if (d) return { ...d, latency_ms: latency };
      const reason = result === TIMED_OUT ? 'timeout' : 'worker_error';
      return { id: it.id, status: 'unknown', reason, source: 'system', latency_ms: latency };
    });
  }

  // Two steps (README "Authorization chain"): the `decide` task answers from the local list
  // and the cache; what it refers goes to the `authorize` task (upstream, offline rules).
  // Local and cached decisions are recorded and delivered without waiting for upstream calls.
  async function decide(items: InFlight[]): Promise<void> {
    const started = now();
    const task: DecideTask = {
      dbPath: config.dbPath,
      nativeBinding: deps.nativeBinding,
      now: started,
      items: items.map((it) => ({ id: it.id, station_id: it.station_id, driver_token: it.driver_token ?? '' })),
      authorizer: authorizer?.decide,
    };
    const result = await runBefore<Decision[]>('decide', task, config.authorizationTimeoutMs);
    const decisions = outcomes(items, result, now() - started);
    const decided: InFlight[] = [];
    const final: Decision[] = [];
    const referred: InFlight[] = [];
    const referrals: AuthorizeTask['items'] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const d = decisions[i]!;
      if (d.referral && authorizer) {
        referred.push(it);
        referrals.push({ id: it.id, station_id: it.station_id, driver_token: it.driver_token ?? '', referral: d.referral });
      } else {
        decided.push(it);
        final.push(d);
      }
    }
    const settling = decided.length > 0 ? settle(decided, final) : Promise.resolve();
    if (referred.length > 0 && authorizer) {
      const remaining = config.authorizationTimeoutMs - (now() - started);
      const upstream: AuthorizeTask = { authorizer: authorizer.settings, now: now(), budgetMs: upstreamBudgetMs(config.authorizationTimeoutMs, remaining), items: referrals };
      const answers = await runBefore<Decision[]>('authorize', upstream, Math.max(0, remaining));
      await settle(referred, outcomes(referred, answers, now() - started));
    }
    await settling;
  }

  /** Records decisions (and what they leave behind) in one commit, then delivers them. */
  async function settle(items: InFlight[], decisions: Decision[]): Promise<void> {
    try {
      await committer.run(() => {
        const n = store.recordDecisions(decisions, now());
        deps.authStore?.record(decisions, new Map(items.map((it) => [it.id, it])), now());
        return n;
      });
    } catch (err) {
      // The rows keep their lease and are claimed again once it expires.
      log.error({ err: String(err), count: items.length }, 'could not persist decisions; will retry after lease');
      finish(items);
      return;
    }
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const d = decisions[i]!;
      it.decision = d.status;
      deps.observer?.decided(d);
      log.info(
        {
          request_id: it.id, station_id: it.station_id, driver_token: maskToken(it.driver_token ?? ''), decision: d.status, reason: d.reason, source: d.source, latency_ms: d.latency_ms,
          ...(d.upstream_error ? { upstream_error: d.upstream_error } : {}),
        },
        'decided',
      );
    }
    await deliver(items);
  }

  async function deliver(items: InFlight[]): Promise<void> {
    const sentAt = now();
    const task: DeliverTask = {
      timeoutMs: config.callbackTimeoutMs,
      allowedHosts: config.callbackAllowedHosts,
      items: items.map((it) => {
        const body = JSON.stringify({ station_id: it.station_id, driver_token: it.driver_token, status: it.decision });
        return { id: it.id, url: it.callback_url, body, headers: webhookHeaders(signingKeysList, it.id, sentAt, body) };
      }),
    };
    let results: DeliveryResult[] | null = null;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Workers enforce the callback timeout themselves; this guard only covers a thread
      // that stopped answering.
      const r = await Promise.race([
        pool.run(task, { name: 'deliver' }) as Promise<DeliveryResult[]>,
        new Promise<typeof TIMED_OUT>((resolve) => {
          timer = setTimeout(resolve, config.callbackTimeoutMs + 5000, TIMED_OUT);
        }),
      ]);
      if (r !== TIMED_OUT) results = r;
    } catch (err) {
      log.error({ err: String(err) }, 'deliver task failed');
    } finally {
      clearTimeout(timer);
    }
    const byId = new Map<string, DeliveryResult>();
    if (results) for (const r of results) byId.set(r.id, r);
    const at = now();
    const records: AttemptRecord[] = items.map((it) => {
      const r = byId.get(it.id) ?? { id: it.id, started_at: sentAt, duration_ms: at - sentAt, http_status: null, error: 'worker_error', retry_after_ms: null };
      const attempt = it.attempts + 1;
      let outcome = classify(r);
      let failure: string | null = null;
      let next_due_at: number | null = null;
      if (outcome === 'retry' && attempt - it.roundStart >= config.callbackMaxAttempts) {
        outcome = 'failed';
        failure = `max_attempts: last ${r.error ?? `HTTP ${r.http_status}`}`;
      } else if (outcome === 'retry') {
        next_due_at = at + backoffMs(attempt - it.roundStart, { baseMs: config.callbackRetryBaseMs, maxMs: config.callbackRetryMaxMs }, random, r.retry_after_ms);
      } else if (outcome === 'failed') {
        failure = r.http_status === null ? `${r.error}: ${r.detail ?? ''}`.trim() : `rejected: HTTP ${r.http_status}`;
      }
      return { id: it.id, attempt, started_at: r.started_at, duration_ms: r.duration_ms, http_status: r.http_status, error: r.error, outcome, next_due_at, failure };
    });
    try {
      await committer.run(() => store.recordAttempts(records, at));
    } catch (err) {
      log.error({ err: String(err), count: items.length }, 'could not persist delivery results; will redeliver after lease');
      finish(items);
      return;
    }
    let finals = 0;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const rec = records[i]!;
      if (rec.outcome !== 'retry') finals++;
      deps.observer?.attempted(rec);
      log.info(
        { request_id: it.id, attempt: rec.attempt, outcome: rec.outcome, http_status: rec.http_status, error: rec.error, duration_ms: rec.duration_ms, next_due_at: rec.next_due_at ?? undefined },
        rec.outcome === 'retry' ? 'delivery attempt failed; will retry' : rec.outcome === 'delivered' ? 'delivered' : 'delivery failed',
      );
    }
    depth.finished(finals);
    finish(items);
  }

  return {
    /** Direct hand-off from the accept path (see Handoff in src/intake.ts). */
    handoff: {
      leaseMs,
      tryReserve(): boolean {
        if (stopped || inflight.size + reserved >= capacity) return false;
        reserved++;
        return true;
      },
      cancel(): void {
        reserved--;
      },
      adopt(row: { id: string; station_id: string; driver_token: string; callback_url: string }): void {
        reserved--;
        const item: InFlight = { id: row.id, station_id: row.station_id, driver_token: row.driver_token, callback_url: row.callback_url, attempts: 0, roundStart: 0, decision: null };
        inflight.set(row.id, item);
        adopted.push(item);
        // Every accept of one commit is adopted in the same turn: batch them per task.
        if (!adoptScheduled) {
          adoptScheduled = true;
          setImmediate(dispatchAdopted);
        }
      },
    },
    start(): void {
      stopped = false;
      kick();
    },
    /** New work was committed: look for it now rather than at the next poll. */
    kick,
    /** The upstream authorizer's circuit breaker, null without AUTHORIZER_URL (health, metrics). */
    authorizerBreaker(): { state: BreakerState; opened: number } | null {
      if (!authorizer) return null;
      const b = breaker(authorizer.settings.breakerState, { failures: authorizer.settings.breakerFailures, openMs: authorizer.settings.breakerOpenMs });
      return { state: b.state(now()), opened: b.opened };
    },
    get inflight(): number {
      return inflight.size;
    },
    /**
     * Stops claiming, waits up to graceMs for in-flight work, then hands back the leases
     * of what is still running so a restart picks it up at once.
     */
    async stop(graceMs: number): Promise<{ released: number }> {
      stopped = true;
      if (wakeTimer) clearTimeout(wakeTimer);
      if (inflight.size > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, graceMs);
          idleWaiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      const ids = [...inflight.keys()];
      let released = 0;
      if (ids.length) {
        released = await committer.run(() => store.release(ids, now()));
      }
      return { released };
    },
  };
}

export type Dispatcher = ReturnType<typeof createDispatcher>;
