import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Decision } from '../core/types.ts';
import { droppedLogLines } from './logsink.ts';
import type { AttemptRecord } from '../queue/store.ts';

// Prometheus series (SPEC §1 /metrics). Labels take a handful of fixed values only:
// never request ids, tokens, station ids or URLs.

export interface MetricSources {
  queueDepth(): number;
  queueMax(): number;
  /** Age in seconds of the oldest request not yet finished, 0 when none. */
  /** Read from the database (a query on PostgreSQL). */
  oldestAgeSeconds(): number | Promise<number>;
  deadLetters(): number | Promise<number>;
  poolUtilization(): number;
  poolThreads(): number;
  inFlight(): number;
  /** The dispatcher's lanes and callback origins by class. */
  lanes?: () => { deciding: number; delivering: number; deliveryMax: number; perOrigin: number; origins: { saturated: number; failing: number; healthy: number } };
  /** 0 closed, 1 open, 0.5 half-open; null without an upstream authorizer. */
  breakerOpen?: () => number | null;
}

/** What an HTTP answer to POST /api/v1/charging-session counts as. */
export function requestOutcome(status: number, replayed: boolean): string {
  if (status === 202) return replayed ? 'replayed' : 'accepted';
  if (status === 400) return 'invalid';
  if (status === 413) return 'too_large';
  if (status === 415) return 'unsupported_media_type';
  if (status === 422) return 'idempotency_conflict';
  if (status === 503) return 'rejected';
  return 'error';
}

function attemptClass(r: AttemptRecord): string {
  if (r.http_status === null) return r.error === 'timeout' ? 'timeout' : r.error === 'refused_by_policy' ? 'policy' : 'network';
  return `${Math.floor(r.http_status / 100)}xx`;
}

/** Period of the event-loop delay sampling timer. */
export const EVENT_LOOP_SAMPLE_MS = 1000;

export function createMetrics(src: MetricSources) {
  const registry = new Registry();
  // The event-loop delay histogram samples with a timer of this period. At 20 ms it woke an
  // idle gateway 50 times a second (~100 epoll returns); once a second still shows a
  // blocked loop in the lag metrics and leaves the process asleep (docs/performance.md).
  collectDefaultMetrics({ register: registry, prefix: 'chargegate_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });

  const requests = new Counter({ name: 'chargegate_requests_total', help: 'Charging-session requests by outcome', labelNames: ['outcome'], registers: [registry] });
  const decisions = new Counter({ name: 'chargegate_decisions_total', help: 'Decisions by status and source', labelNames: ['status', 'source'], registers: [registry] });
  const decisionLatency = new Histogram({
    name: 'chargegate_decision_latency_seconds',
    help: 'Time from dispatch to decision',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const attempts = new Counter({ name: 'chargegate_callback_attempts_total', help: 'Callback attempts by result and answer class', labelNames: ['result', 'class'], registers: [registry] });
  const callbackLatency = new Histogram({
    name: 'chargegate_callback_latency_seconds',
    help: 'Duration of one callback POST',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const commits = new Histogram({
    name: 'chargegate_db_commit_seconds',
    help: 'Duration of one group commit (fsync included)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const commitOps = new Counter({ name: 'chargegate_db_committed_ops_total', help: 'Writes committed by group commits', registers: [registry] });

  const gauge = (name: string, help: string, read: () => number | Promise<number>) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set(await read());
      },
    });
  gauge('chargegate_queue_depth', 'Requests accepted and not yet delivered or failed', src.queueDepth);
  gauge('chargegate_queue_max', 'QUEUE_MAX_SIZE', src.queueMax);
  gauge('chargegate_queue_oldest_age_seconds', 'Age of the oldest request not yet finished', src.oldestAgeSeconds);
  gauge('chargegate_dead_letters', 'Requests in state failed (replayable)', src.deadLetters);
  gauge('chargegate_worker_utilization', 'Worker pool utilisation (0-1, piscina)', src.poolUtilization);
  gauge('chargegate_worker_threads', 'Worker threads alive', src.poolThreads);
  if (src.breakerOpen) {
    const read = src.breakerOpen;
    gauge('chargegate_authorizer_breaker_open', 'Upstream authorizer circuit breaker: 0 closed, 0.5 half-open, 1 open', () => read() ?? 0);
  }
  new Counter({
    name: 'chargegate_log_lines_dropped_total',
    help: 'Log lines dropped because stdout could not keep up (8 MiB pending at most)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(droppedLogLines());
    },
  });
  gauge('chargegate_items_in_flight', 'Requests claimed and being decided or delivered', src.inFlight);
  if (src.lanes) {
    const lanes = src.lanes;
    new Gauge({
      name: 'chargegate_lane_in_flight',
      help: 'Requests held by each dispatcher lane (decide: being decided; deliver: callback POSTs in flight)',
      labelNames: ['lane'],
      registers: [registry],
      collect() {
        const l = lanes();
        this.set({ lane: 'decide' }, l.deciding);
        this.set({ lane: 'deliver' }, l.delivering);
      },
    });
    gauge('chargegate_deliveries_max', 'Bound on callback POSTs in flight (WORKERS x WORKER_CONCURRENCY)', () => lanes().deliveryMax);
    gauge('chargegate_deliveries_max_per_origin', 'Bound on callback POSTs in flight to one origin', () => lanes().perOrigin);
    // One series per class, never per origin: any client picks its callback URL.
    new Gauge({
      name: 'chargegate_callback_origins',
      help: 'Callback origins this process knows, by class: saturated (at the per-origin bound), failing (last attempt failed), healthy',
      labelNames: ['class'],
      registers: [registry],
      collect() {
        const o = lanes().origins;
        this.set({ class: 'saturated' }, o.saturated);
        this.set({ class: 'failing' }, o.failing);
        this.set({ class: 'healthy' }, o.healthy);
      },
    });
  }

  return {
    registry,
    request(status: number, replayed: boolean): void {
      requests.inc({ outcome: requestOutcome(status, replayed) });
    },
    decided(d: Decision): void {
      decisions.inc({ status: d.status, source: d.source });
      decisionLatency.observe(d.latency_ms / 1000);
    },
    attempted(r: AttemptRecord): void {
      attempts.inc({ result: r.outcome, class: attemptClass(r) });
      callbackLatency.observe(r.duration_ms / 1000);
    },
    committed(ops: number, ms: number): void {
      commits.observe(ms / 1000);
      commitOps.inc(ops);
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
