import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { createServer as createTcp, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

// Callback receivers that misbehave the way real ones do, each on its own 127.0.0.1 port
// (its own origin): they never answer, drip, flood, redirect, refuse, reset, or speak
// TLS with a certificate nobody trusts.

export interface Hostile {
  /** The callback URL that reaches it. */
  url: string;
  /** Requests it received (fully read). */
  hits: number;
  /** Bytes it managed to write back (for the huge-body receiver). */
  bytesWritten: number;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, h: Hostile) => void;

const FIXTURES = new URL('../fixtures/', import.meta.url);

async function listen(server: ReturnType<typeof createHttp> | ReturnType<typeof createTcp>): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** An HTTP receiver driven by `handler`; its sockets are destroyed on close. */
async function httpReceiver(handler: Handler, opts: { tls?: boolean } = {}): Promise<Hostile> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const h: Hostile = { url: '', hits: 0, bytesWritten: 0, close: async () => undefined };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      h.hits++;
      handler(req, res, h);
    });
  };
  const server = opts.tls
    ? createHttps({ key: readFileSync(new URL('selfsigned.key', FIXTURES)), cert: readFileSync(new URL('selfsigned.crt', FIXTURES)) }, onRequest)
    : createHttp(onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  h.url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/cb`;
  h.close = () =>
    new Promise<void>((r) => {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  (h as Hostile & { timers: Set<NodeJS.Timeout> }).timers = timers;
  return h;
}

function every(h: Hostile, ms: number, fn: () => boolean): void {
  const timers = (h as Hostile & { timers: Set<NodeJS.Timeout> }).timers;
  const t = setInterval(() => {
    if (!fn()) {
      clearInterval(t);
      timers.delete(t);
    }
  }, ms);
  timers.add(t);
}

/** Reads the request, then never answers; the connection stays open. */
export const hanging = () => httpReceiver(() => undefined);

/** Sends 200 and a 1000-byte Content-Length, then one byte every 100 ms. */
export const dripBody = () =>
  httpReceiver((_req, res, h) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
    every(h, 100, () => !res.destroyed && res.write('x'));
  });

/** Dribbles the status line itself, one byte every 100 ms. */
export async function dripHeaders(): Promise<Hostile> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const h: Hostile = { url: '', hits: 0, bytesWritten: 0, close: async () => undefined };
  const server = createTcp((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('data', () => {
      h.hits++;
      const line = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';
      let i = 0;
      const t = setInterval(() => {
        if (s.destroyed || i >= line.length) return clearInterval(t);
        s.write(line[i++]!);
      }, 100);
      timers.add(t);
    });
  });
  const port = await listen(server);
  h.url = `http://127.0.0.1:${port}/cb`;
  h.close = () =>
    new Promise<void>((r) => {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return h;
}

/** Answers 200 with a body that never ends, written as fast as the peer reads. */
export const hugeBody = () =>
  httpReceiver((_req, res, h) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (!res.destroyed) {
        h.bytesWritten += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
    };
    res.on('error', () => undefined);
    pump();
  });

/** Answers with `status` (and `headers`), an empty body. */
export const answering = (status: number, headers: Record<string, string> = {}) => httpReceiver((_req, res) => void res.writeHead(status, headers).end());

/** Answers the first `n` calls with `first`, the rest with 200. */
export const firstThen = (n: number, status: number, headers: Record<string, string>) => {
  let calls = 0;
  return httpReceiver((_req, res) => void (++calls <= n ? res.writeHead(status, headers).end() : res.writeHead(200).end()));
};

/** An HTTPS receiver whose certificate is self-signed (not trusted): the handshake fails. */
export const untrustedTls = () => httpReceiver((_req, res) => void res.writeHead(200).end(), { tls: true });

/** Accepts the connection, reads the request and resets the socket. */
export async function resetting(): Promise<Hostile> {
  const h: Hostile = { url: '', hits: 0, bytesWritten: 0, close: async () => undefined };
  const sockets = new Set<Socket>();
  const server = createTcp((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('data', () => {
      h.hits++;
      s.resetAndDestroy();
    });
  });
  const port = await listen(server);
  h.url = `http://127.0.0.1:${port}/cb`;
  h.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return h;
}

/**
 * A host name that cannot resolve and whose lookup never leaves this machine: a label of
 * 64 characters is longer than DNS allows (63), so the resolver refuses it before sending
 * any query (a plain unknown name would be asked of the machine's DNS server).
 */
export const UNRESOLVABLE_URL = `http://${'x'.repeat(64)}.invalid/cb`;
