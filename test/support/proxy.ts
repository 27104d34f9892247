import { createServer, request, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

// A real forward proxy on 127.0.0.1:0, as sites run in front of the outside world:
// CONNECT host:port tunnels (https: targets) and absolute-form requests (`POST
// http://host/path`, http: targets). It records what it was asked to reach.

export interface ProxiedCall {
  /** CONNECT for a tunnel, else the request's method. */
  method: string;
  /** host:port for a tunnel, the absolute URL otherwise. */
  target: string;
}

export async function startProxy() {
  const calls: ProxiedCall[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res) => {
    const url = req.url ?? '';
    calls.push({ method: req.method ?? '', target: url });
    if (!/^http:\/\//i.test(url)) {
      res.writeHead(400).end('absolute-form only');
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    const upstream = request(url, { method: req.method, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.headersSent ? res.destroy() : res.writeHead(502).end('bad gateway'));
    req.pipe(upstream);
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    calls.push({ method: 'CONNECT', target });
    const m = /^(.+):(\d+)$/.exec(target);
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const out = connect(Number(m[2]), m[1]!.replace(/^\[|\]$/g, ''), () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) out.write(head);
      out.pipe(client);
      client.pipe(out);
    });
    sockets.add(out);
    sockets.add(client);
    out.on('close', () => sockets.delete(out));
    client.on('close', () => sockets.delete(client));
    out.on('error', () => client.destroy());
    client.on('error', () => out.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    calls,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export type Proxy = Awaited<ReturnType<typeof startProxy>>;
