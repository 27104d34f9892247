import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// A real HTTP callback receiver on 127.0.0.1:0 that records every call.

export interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  json: Record<string, unknown> | null;
  at: number;
}

export type Responder = (call: Received, n: number, res: ServerResponse) => unknown;

/** Reads a request body to the end; `json` is null when it is not JSON. */
export function readBody(req: IncomingMessage, onBody: (body: string, json: Record<string, unknown> | null) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    let json: Record<string, unknown> | null = null;
    try {
      json = JSON.parse(body);
    } catch {}
    onBody(body, json);
  });
}

export async function startReceiver(respond: Responder = (_c, _n, res) => res.writeHead(200).end()) {
  const calls: Received[] = [];
  const server = createServer((req, res) => {
    readBody(req, (body, json) => {
      const call = { path: req.url ?? '', headers: req.headers, body, json, at: Date.now() };
      calls.push(call);
      void respond(call, calls.length, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    calls,
    port,
    url: (path = '/cb') => `http://127.0.0.1:${port}${path}`,
    /** Calls whose webhook-id is the given request id. */
    callsFor: (id: string) => calls.filter((c) => c.headers['webhook-id'] === id),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/** A receiver that holds every callback unanswered until release(): work stays in flight. */
export async function startHeldReceiver() {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const receiver = await startReceiver((_c, _n, res) => void held.then(() => res.writeHead(200).end()));
  return { receiver, release };
}
