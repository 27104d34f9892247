import type { ServerRoute } from '@hapi/hapi';

// /health for people and monitors, /health/live and /health/ready for supervisors,
// /metrics for Prometheus. Rules of /health are documented in src/observe/health.ts.

export interface HealthSource {
  ready(): boolean;
  check(): Promise<{ status: 'UP' | 'DEGRADED' | 'DOWN'; components: Record<string, unknown> }>;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export function healthRoutes(src: HealthSource): ServerRoute[] {
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
      handler: async (_req, h) => {
        const m = await src.metrics();
        return h.response(m.body).type(m.contentType);
      },
    },
  ];
}
