import { connect, type Socket } from 'node:net';

// Raw HTTP/1.1 over a TCP socket, for what a well-behaved client library refuses to send:
// conflicting framing headers, invalid UTF-8, header floods, bodies that drip in.

export interface RawAnswer {
  /** Every response status line seen on the connection, in order. */
  statuses: number[];
  /** The whole byte stream the server sent, as latin1 text. */
  text: string;
  /** JSON bodies of the responses, where they parse. */
  bodies: unknown[];
  /** True when the server closed the connection (FIN or reset) before our deadline. */
  closedByServer: boolean;
  /** Milliseconds from the first byte sent to the close (or the deadline). */
  ms: number;
}

/** Splits a response stream into responses (Content-Length framed or close-delimited). */
export function parseResponses(text: string): { statuses: number[]; bodies: unknown[] } {
  const statuses: number[] = [];
  const bodies: unknown[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.')) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) break;
    const head = rest.slice(0, headEnd);
    statuses.push(Number(head.slice(9, 12)));
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const len = cl ? Number(cl[1]) : rest.length - headEnd - 4;
    const body = rest.slice(headEnd + 4, headEnd + 4 + len);
    try {
      bodies.push(JSON.parse(Buffer.from(body, 'latin1').toString('utf8')));
    } catch {
      bodies.push(body);
    }
    rest = rest.slice(headEnd + 4 + len);
  }
  return { statuses, bodies };
}

export interface RawOptions {
  /** Give up (and destroy the socket) after this long. */
  timeoutMs?: number;
  /** Send the bytes in these pieces with this pause between them (a slow client). */
  chunks?: Array<string | Buffer>;
  pauseMs?: number;
}

/**
 * Sends `bytes` (or `opts.chunks`, one per pause) and collects everything the server says
 * until it closes the connection or the deadline passes.
 */
export function raw(port: number, bytes: string | Buffer, opts: RawOptions = {}): Promise<RawAnswer> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve) => {
    const t0 = performance.now();
    const socket: Socket = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    let closedByServer = false;
    let done = false;
    let dripTimer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(dripTimer);
      socket.destroy();
      const text = Buffer.concat(got).toString('latin1');
      resolve({ ...parseResponses(text), text, closedByServer, ms: Math.round(performance.now() - t0) });
    };
    const deadline = setTimeout(finish, timeoutMs);
    socket.on('data', (c: Buffer) => got.push(c));
    socket.on('error', () => {
      closedByServer = true;
      finish();
    });
    socket.on('end', () => {
      closedByServer = true;
      finish();
    });
    socket.on('close', () => {
      closedByServer = true;
      finish();
    });
    socket.on('connect', () => {
      if (!opts.chunks) {
        socket.write(bytes);
        return;
      }
      const pieces = [...opts.chunks];
      const next = () => {
        if (done) return;
        const piece = pieces.shift();
        if (piece === undefined) return;
        socket.write(piece);
        dripTimer = setTimeout(next, opts.pauseMs ?? 1000);
      };
      next();
    });
  });
}

/** A POST with exactly these header lines and body bytes, nothing added. */
export function rawPost(path: string, headerLines: string[], body: string | Buffer = ''): Buffer {
  const head = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...headerLines].join('\r\n') + '\r\n\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), typeof body === 'string' ? Buffer.from(body, 'utf8') : body]);
}
