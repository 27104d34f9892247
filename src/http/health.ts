import { timingSafeEqual } from 'node:crypto';
import type { ServerRoute } from '@hapi/hapi';
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
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(String(header ?? ''));
  const a = Buffer.from(m?.[1] ?? '');
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Health answers stay open (supervisors and load balancers carry no credentials, and they
 * show no request data); /metrics asks for METRICS_TOKEN when one is set, the way
 * Prometheus scrapes with `authorization: { credentials: … }`.
 */
export function healthRoutes(src: HealthSource, opts: { metricsToken: string | null } = { metricsToken: null }): ServerRoute[] {
  return [
    {
      method: 'GET',
      path: '/health',
      handler: async (_req, h) => {
        const report = await src.check();
        return h.response(report).code(report.status === 'DOWN' ? 503 : 200).header('cache-control', 'no-store');
      },
    },
    { method: 'GET', path: '/health/live', handler: () => ({ status: 'UP' }) },
    {
      method: 'GET',
      path: '/health/ready',
      handler: (_req, h) => (src.ready() ? { status: 'UP' } : h.response({ status: 'DOWN' }).code(503)),
    },
    {
      method: 'GET',
      path: '/metrics',
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
