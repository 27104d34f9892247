import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './receiver.ts';

// A real upstream authority on 127.0.0.1:0 (json or OCPI shaped, as the script answers)
// that records every call and can misbehave on demand: answer late, never answer, stall
// mid-body, or hold answers until the test lets them go.

export interface AuthorityCall {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  json: Record<string, unknown> | null;
}

export type Behaviour =
  /** Answers with this status and JSON (or raw text) body. */
  | { status: number; json?: unknown; text?: string }
  /** Never answers; the connection stays open. */
  | { hang: true }
  /** Sends headers and half a body, then stalls. */
  | { stall: true }
  /** Answers `then` after ms (a slow authority; the timer is the fake's, not the test's). */
  | { delayMs: number; then: Behaviour }
  /** Answers `then` once the test calls release(). */
  | { held: true; then: Behaviour };

export type Script = (call: AuthorityCall, n: number) => Behaviour;

export async function startAuthority(script: Script) {
  const calls: AuthorityCall[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let waiting: Array<() => void> = [];
  const timers = new Set<NodeJS.Timeout>();

  function act(b: Behaviour, res: ServerResponse, done: () => void): void {
    if ('hang' in b) return;
    if ('stall' in b) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"status":');
      return;
    }
    if ('delayMs' in b) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        act(b.then, res, done);
      }, b.delayMs);
      timers.add(timer);
      return;
    }
    if ('held' in b) {
      waiting.push(() => act(b.then, res, done));
      return;
    }
    const body = b.text ?? (b.json === undefined ? '' : JSON.stringify(b.json));
    res.writeHead(b.status, { 'content-type': 'application/json' }).end(body);
    done();
  }

  const server = createServer((req, res) => {
    readBody(req, (body, json) => {
      const call = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, json };
      calls.push(call);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        inFlight--;
      };
      res.on('close', done);
      act(script(call, calls.length), res, done);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    calls,
    port,
    url: (path = '/authorize') => `http://127.0.0.1:${port}${path}`,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    /** Calls being held (behaviour `held`). */
    get held() {
      return waiting.length;
    },
    /** Lets every held answer go. */
    release(): void {
      const w = waiting;
      waiting = [];
      for (const fn of w) fn();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const t of timers) clearTimeout(t);
        waiting = [];
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export type Authority = Awaited<ReturnType<typeof startAuthority>>;

/** OCPI 2.2.1 envelope around an AuthorizationInfo with this AllowedType. */
export function ocpiInfo(allowed: string, whitelist = 'ALLOWED', statusCode = 1000) {
  return {
    data: {
      allowed,
      token: { country_code: 'DE', party_id: 'TNM', uid: 'x', type: 'RFID', contract_id: 'DE8ACC12E46L89', issuer: 'test', valid: true, whitelist, last_updated: '2025-01-01T00:00:00Z' },
    },
    status_code: statusCode,
    timestamp: new Date().toISOString(),
  };
}
