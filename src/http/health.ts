import type { ServerRoute } from '@hapi/hapi';

// Liveness and readiness for process supervisors. The full /health with its components
// grows with the health issue; readiness is false while starting or shutting down.

export interface HealthSource {
  ready(): boolean;
  queue(): { depth: number; max: number };
}

export function healthRoutes(src: HealthSource): ServerRoute[] {
  return [
    { method: 'GET', path: '/health/live', handler: () => ({ status: 'UP' }) },
    {
      method: 'GET',
      path: '/health/ready',
      handler: (_req, h) => (src.ready() ? { status: 'UP' } : h.response({ status: 'DOWN' }).code(503)),
    },
  ];
}
