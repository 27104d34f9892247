import { timingSafeEqual } from 'node:crypto';
import type { ServerRoute } from '@hapi/hapi';
import { errorDoc, type RouteDoc } from './routedoc.ts';
import { bearerToken } from './auth.ts';
import { errorReply } from './reply.ts';

// /health for people and monitors, /health/live and /health/ready for supervisors,
// /metrics for Prometheus. Rules of /health are documented in src/observe/health.ts.

export interface HealthSource {
  ready(): boolean;
  check(): Promise<{ status: 'UP' | 'DEGRADED' | 'DOWN'; components: Record<string, unknown> }>;
  metrics(): Promise<{ contentType: string; body: string }>;
}

/** Constant-time check of a presented scrape token. */
function tokenMatches(header: unknown, token: string): boolean {
  const a = Buffer.from(bearerToken(header) ?? '');
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Health answers stay open (supervisors and load balancers carry no credentials, and they
 * show no request data); /metrics asks for METRICS_TOKEN when one is set, the way
 * Prometheus scrapes with `authorization: { credentials: … }`.
 */
const ops = (doc: Omit<RouteDoc, 'tags'>) => ({ plugins: { openapi: { ...doc, tags: ['operations'] } } });

export function healthRoutes(src: HealthSource, opts: { metricsToken: string | null } = { metricsToken: null }): ServerRoute[] {
  return [
    {
      method: 'GET',
      path: '/health',
      options: ops({
        operationId: 'getHealth',
        summary: 'Health of the service and its parts',
        description: 'DOWN when the database or the worker threads are; DEGRADED when any part is; the rules are in the README.',
        answers: {
          200: { description: 'UP or DEGRADED', schema: 'healthAnswer' },
          503: { description: 'DOWN', schema: 'healthAnswer' },
        },
      }),
      handler: async (_req, h) => {
        const report = await src.check();
        return h.response(report).code(report.status === 'DOWN' ? 503 : 200).header('cache-control', 'no-store');
      },
    },
    {
      method: 'GET',
      path: '/health/live',
      options: ops({
        operationId: 'getLiveness',
        summary: 'Liveness for process supervisors: the process answers',
        answers: { 200: { description: 'alive', schema: 'probeAnswer' } },
      }),
      handler: () => ({ status: 'UP' }),
    },
    {
      method: 'GET',
      path: '/health/ready',
      options: ops({
        operationId: 'getReadiness',
        summary: 'Readiness for process supervisors and load balancers',
        answers: {
          200: { description: 'started, and the database is usable', schema: 'probeAnswer' },
          503: { description: 'starting, stopping, or the database is not usable', schema: 'probeAnswer' },
        },
      }),
      handler: (_req, h) => (src.ready() ? { status: 'UP' } : h.response({ status: 'DOWN' }).code(503)),
    },
    {
      method: 'GET',
      path: '/metrics',
      options: ops({
        operationId: 'getMetrics',
        summary: 'Prometheus text exposition',
        description: 'requests by outcome, queue depth and age, decisions, callback attempts, latencies, dead letters, worker use, event-loop lag',
        answers: {
          200: { description: 'the metrics', contentType: 'text/plain', rawSchema: { type: 'string' } },
          401: errorDoc('METRICS_TOKEN is set and the request did not carry it as `Authorization: Bearer <token>`', {
            'WWW-Authenticate': { description: '`Bearer realm="chargegate-metrics"`', required: true },
          }),
        },
      }),
      handler: async (req, h) => {
        if (opts.metricsToken !== null && !tokenMatches(req.headers.authorization, opts.metricsToken)) {
          return errorReply(h, 'CG_ERR_UNAUTHORIZED', 'a valid scrape token is required: Authorization: Bearer <METRICS_TOKEN>')
            .header('www-authenticate', 'Bearer realm="chargegate-metrics"');
        }
        const m = await src.metrics();
        return h.response(m.body).type(m.contentType);
      },
    },
  ];
}
