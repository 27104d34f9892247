import Hapi from '@hapi/hapi';
import type { Logger } from 'pino';
import type { UrlPolicy } from '../core/urlpolicy.ts';
import type { Intake } from '../intake.ts';
import { codeForStatus, errorBody } from './reply.ts';
import { sessionRoutes } from './session.ts';
import { healthRoutes, type HealthSource } from './health.ts';
import { statusRoutes, type RequestLookup } from './status.ts';

export interface ServerDeps {
  host: string;
  port: number;
  intake: Intake;
  /** Callback URL policy applied at accept time. */
  policy: UrlPolicy;
  reads: RequestLookup;
  health: HealthSource;
  log: Logger;
  /** Told of every answer to POST /api/v1/charging-session (metrics). */
  onSessionAnswer?: (status: number, replayed: boolean) => void;
}

/** Messages for Hapi's own errors: short, and never a stack trace. */
function messageFor(status: number, boomMessage: string): string {
  if (status === 400) return 'the request body is not valid JSON';
  if (status === 413) return 'the request body is larger than 16 KiB';
  if (status === 415) return 'Content-Type must be application/json';
  if (status === 404) return 'no such resource';
  if (status === 405) return 'method not allowed';
  if (status >= 500) return 'internal error';
  return boomMessage;
}

export function createServer(deps: ServerDeps): Hapi.Server {
  const server = Hapi.server({
    host: deps.host,
    port: deps.port,
    router: { stripTrailingSlash: true },
    routes: {
      // Slow or stalled request bodies are cut off instead of holding a socket forever.
      timeout: { server: false, socket: 30_000 },
      payload: { timeout: 10_000 },
    },
  });
  server.route([...sessionRoutes(deps.intake, deps.policy), ...statusRoutes(deps.reads), ...healthRoutes(deps.health)]);

  // Every error the framework produces gets the SPEC's error shape.
  server.ext('onPreResponse', (request, h) => {
    const res = request.response;
    if (!('isBoom' in res) || !res.isBoom) return h.continue;
    const status = res.output.statusCode;
    if (status >= 500) deps.log.error({ err: res.message, path: request.path }, 'request failed');
    const code = codeForStatus(status);
    const message = messageFor(status, res.message);
    const errors = status === 400 ? [{ field: 'body', message }] : [];
    const out = h.response(errorBody(code, message, errors)).code(status);
    for (const [k, v] of Object.entries(res.output.headers)) if (k.toLowerCase() !== 'content-type') out.header(k, String(v));
    return out;
  });
  if (deps.onSessionAnswer) {
    const count = deps.onSessionAnswer;
    server.events.on('response', (request) => {
      if (request.path !== '/api/v1/charging-session' || request.method !== 'post') return;
      const res = request.response;
      if (!res || !('statusCode' in res)) return;
      count(res.statusCode, 'headers' in res && res.headers['idempotent-replayed'] === 'true');
    });
  }
  return server;
}
