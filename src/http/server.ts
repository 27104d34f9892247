import { createServer as createListener } from 'node:http';
import { createServer as createTlsListener } from 'node:https';
import type { Server, Socket } from 'node:net';
import Hapi, { type ServerRoute } from '@hapi/hapi';
import type { Logger } from 'pino';
import { compilePolicy, type UrlPolicy } from '../core/urlpolicy.ts';
import type { Intake } from '../queue/intake.ts';
import { registerAuth, type KeyCheck } from './auth.ts';
import { codeForStatus, errorBody } from './reply.ts';
import { sessionRoutes, sessionSchemaLoader } from './session.ts';
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
  /** Connection limits; the defaults (HTTP_LIMITS) are the service's. */
  limits?: Partial<HttpLimits>;
  /** True while the service stops: every answer then carries Connection: close. */
  draining?: () => boolean;
  /** The release, as info.version of the OpenAPI document. */
  version?: string;
  /** API keys (SPEC "Who may call"); without it no key is ever asked for (the OpenAPI document's server). */
  keyring?: KeyCheck;
  /** PEM certificate chain and key: the listener speaks HTTPS. */
  tls?: { cert: Buffer; key: Buffer } | undefined;
  /** Connections held at once; past it a new connection is closed at once. */
  maxConnections?: number;
  /** When set, GET /metrics asks for Authorization: Bearer <token>. */
  metricsToken?: string | null;
}

/** How long a client may take, and how much header it may send (README "Limits"). */
export interface HttpLimits {
  /** The request line and every header must have arrived within this (slowloris). */
  headersTimeoutMs: number;
  /** The whole request, body included, must have arrived within this. */
  requestTimeoutMs: number;
  /** The body must have arrived within this once the handler reads it (Hapi's payload timeout). */
  payloadTimeoutMs: number;
  /** A connection with nothing moving on it is closed after this. */
  idleTimeoutMs: number;
  /** How often the two deadlines above are checked (Node checks every 30 s by default). */
  checkIntervalMs: number;
  /** Request line plus headers, in bytes; past it: 431. */
  maxHeaderBytes: number;
}

export const HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  payloadTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  checkIntervalMs: 1000,
  maxHeaderBytes: 16 * 1024,
});

/** Messages for Hapi's own errors: short, and never a stack trace. */
function messageFor(status: number, boomMessage: string): string {
  if (status === 400) return /compressed/i.test(boomMessage) ? 'the request body is not valid gzip/deflate data' : 'the request URL is not valid';
  if (status === 408) return 'the request body did not arrive in time';
  if (status === 413) return 'the request body is larger than 16 KiB';
  if (status === 415) return 'Content-Type must be application/json';
  if (status === 404) return 'no such resource';
  if (status === 401) return 'a valid API key is required: Authorization: Bearer <key>';
  if (status === 405) return 'method not allowed';
  if (status >= 500) return 'internal error';
  return boomMessage;
}

/**
 * Answers for requests Node's parser refuses before Hapi sees them (conflicting framing
 * headers, header floods, a request that never finished arriving), in the API's error
 * shape. Hapi's own handler sends a bare 400 for all of them.
 */
function clientErrorResponse(err: NodeJS.ErrnoException, limits: HttpLimits): Buffer {
  const [status, reason, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', `the request headers are larger than ${limits.maxHeaderBytes} bytes`]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request did not arrive in time']
        : [400, 'Bad Request', 'the request is not valid HTTP/1.1 (framing, header syntax or encoding)'];
  const body = JSON.stringify(errorBody(codeForStatus(status), message));
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * A known path asked with a method it does not serve is 405 with Allow (RFC 9110 §15.5.6),
 * not 404: a client that PUTs or GETs the POST path learns what to send instead. Hapi
 * matches a '*' route only when no route has the request's own method.
 */
export function methodNotAllowedRoutes(routes: readonly ServerRoute[]): ServerRoute[] {
  const byPath = new Map<string, Set<string>>();
  for (const r of routes) {
    const methods = byPath.get(r.path) ?? new Set<string>();
    for (const m of [r.method].flat()) {
      methods.add(m.toUpperCase());
      if (m.toUpperCase() === 'GET') methods.add('HEAD'); // Hapi answers HEAD from the GET route
    }
    byPath.set(r.path, methods);
  }
  return [...byPath].map(([path, methods]) => {
    const allow = [...methods].sort().join(', ');
    return {
      method: '*',
      path,
      options: { payload: { parse: false, output: 'stream' } },
      handler: (request, h) =>
        h
          .response(errorBody('CG_ERR_METHOD_NOT_ALLOWED', `${request.method.toUpperCase()} is not allowed on ${request.path}; allowed: ${allow}`))
          .code(405)
          .header('allow', allow),
    } satisfies ServerRoute;
  });
}

/** What Node keeps on a socket while it answers a request on it. */
interface InFlightResponse {
  writableFinished: boolean;
  headersSent: boolean;
  req?: { complete: boolean };
  once(event: 'finish', fn: () => void): void;
}

/** GET /openapi.json: the document of this server's own route table, made on first use. */
function openApiRoute(version: string): Hapi.ServerRoute {
  let document: Record<string, unknown> | null = null;
  return {
    method: 'GET',
    path: '/openapi.json',
    options: {
      plugins: {
        openapi: {
          operationId: 'getOpenApi',
          summary: 'This document (OpenAPI 3.1)',
          tags: ['operations'],
          answers: { 200: { description: 'the OpenAPI document', rawSchema: { type: 'object' } } },
        },
      },
    },
    handler: async (request, h) => {
      // joi-to-json and lodash load with the first request for it, not with every start.
      const { openApiDocument } = await import('./openapi.ts');
      document ??= await openApiDocument(request.server.table(), version);
      return h.response(document);
    },
  };
}

/**
 * The OpenAPI document without a running service (`chargegate openapi`): the same routes
 * registered on a server that never starts, so it is the document GET /openapi.json serves.
 */
export async function apiDocument(
  version: string,
  allowedHosts: string[] | null = null,
): Promise<Record<string, unknown>> {
  const { openApiDocument } = await import('./openapi.ts');
  const unused = {} as never;
  const server = createServer({ host: '127.0.0.1', port: 0, intake: unused, policy: compilePolicy(allowedHosts), reads: unused, health: unused, log: unused, version });
  return await openApiDocument(server.table(), version);
}

/** Opens the listener as Hapi's autoListen would (`listen(port, host)`), failing with its error. */
function listen(listener: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(port, host, () => {
      listener.removeListener('error', reject);
      resolve();
    });
  });
}

export function createServer(deps: ServerDeps): Hapi.Server {
  const limits: HttpLimits = { ...HTTP_LIMITS, ...deps.limits };
  // Node's own deadlines for slow clients; Hapi does not set them.
  const httpOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
    maxHeaderSize: limits.maxHeaderBytes,
  };
  const listener = deps.tls ? createTlsListener({ ...httpOptions, ...deps.tls }) : createListener(httpOptions);
  // A flood of connections is cut at the door (Node closes what is past the bound at once)
  // instead of being held until the slow-client deadlines end it.
  if (deps.maxConnections !== undefined) listener.maxConnections = deps.maxConnections;
  const server = Hapi.server({
    // The listener is opened below, not by Hapi: Hapi checks a `host` option with its
    // validator's hostname rule, whose IP-address regular expression alone cost each start
    // ~20 ms of CPU to compile (docs/performance.md); config.ts has checked HOST already.
    autoListen: false,
    listener,
    router: { stripTrailingSlash: true },
    routes: {
      // Slow or stalled request bodies are cut off instead of holding a socket forever.
      timeout: { server: false, socket: limits.idleTimeoutMs },
      payload: { timeout: limits.payloadTimeoutMs },
      // The API has no cookies; a malformed Cookie header must not fail a request.
      state: { parse: false, failAction: 'ignore' },
    },
  });
  // Before Hapi's own listener, so the header is in place whatever answer Hapi writes: a
  // keep-alive client gets this answer, then reconnects (to another instance, or to the
  // restarted one) instead of sending its next request down a connection about to close.
  if (deps.draining) {
    const draining = deps.draining;
    listener.prependListener('request', (_req, res) => {
      if (draining()) res.setHeader('connection', 'close');
    });
  }
  listener.removeAllListeners('clientError');
  listener.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const answer = () => socket.end(clientErrorResponse(err, limits), () => socket.destroy());
    const inFlight = (socket as Socket & { _httpMessage?: InFlightResponse })._httpMessage;
    if (!inFlight || inFlight.writableFinished) answer();
    // The request being answered arrived whole: the error is the next pipelined one's,
    // so the answer under way goes out first.
    else if (inFlight.req?.complete) inFlight.once('finish', answer);
    // The error is this request's own (its body broke off or came too slowly): it will
    // never finish normally, so it gets the error answer, unless its own already began.
    else if (!inFlight.headersSent) answer();
    else socket.destroy();
    // Whatever the peer does next, the socket does not outlive a short grace.
    setTimeout(() => socket.destroy(), 2000).unref();
  });
  // The last step of server.start() that can fail (no I/O callback runs between it and
  // 'started'): start() resolves once the listener is open, or rejects with its error
  // (EADDRINUSE, EACCES...) leaving Hapi not started, so stop() has nothing to close; a
  // started server's stop() closes it as before.
  server.ext('onPreStart', () => listen(listener, deps.port, deps.host));
  registerAuth(server, deps.keyring ?? { required: () => false, verify: () => null });
  const sessionSchema = sessionSchemaLoader(deps.policy);
  // Right after the listener opens (not before: it is ~15 ms of each start), so that a first
  // POST seldom waits for joi; a POST that comes sooner loads it itself.
  server.events.on('start', () => setImmediate(() => void sessionSchema().catch(() => undefined)));
  const routes = [
    ...sessionRoutes(deps.intake, sessionSchema),
    ...statusRoutes(deps.reads),
    ...healthRoutes(deps.health, { metricsToken: deps.metricsToken ?? null }),
    openApiRoute(deps.version ?? '0.0.0'),
  ];
  server.route(routes);
  server.route(methodNotAllowedRoutes(routes));

  // A body announced larger than the route takes is refused before any of it is read and
  // before a 100 Continue invites it (Hapi would read it to the end first, then answer).
  server.ext('onPreAuth', (request, h) => {
    const max = request.route.settings.payload?.maxBytes;
    const announced = Number(request.headers['content-length']);
    if (request.method === 'get' || request.method === 'head' || max === undefined || !(announced > max)) return h.continue;
    return h.response(errorBody('CG_ERR_PAYLOAD_TOO_LARGE', messageFor(413, ''))).code(413).takeover();
  });

  // Every error the framework produces gets the SPEC's error shape.
  server.ext('onPreResponse', (request, h) => {
    const res = request.response;
    if (!('isBoom' in res) || !res.isBoom) return h.continue;
    const status = res.output.statusCode;
    if (status >= 500) deps.log.error({ err: res.message, path: request.path }, 'request failed');
    const code = codeForStatus(status);
    const message = messageFor(status, res.message);
    const errors = status === 400 ? [{ field: /URL/.test(message) ? 'url' : 'body', message }] : [];
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
