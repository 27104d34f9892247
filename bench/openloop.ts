// Open-loop load at a fixed rate, in its own process on the load core, with its own callback
// receiver. Request i is due at t0 + i/rate whatever happened to the earlier ones (sends are
// scheduled, not paced by answers), and every latency is measured from that due time, so a
// stalled server shows as latency instead of as fewer requests (no coordinated omission).
// The callback URL carries i (`/cb/<i>`): POST -> callback is the callback's arrival minus
// request i's due time, on this process's clock. wrk2 is not packaged; autocannon's
// `overallRate` paces each connection by its answers (closed loop), so it would hide stalls.
//
//   node bench/openloop.ts '{"port":N,"rate":500,"seconds":10,"warmup":1,"callbacks":true}'
// With "ports":[N,M] instead of "port", requests alternate between the instances (i % count):
// each gets half the rate, on one schedule.
//
// Prints one JSON line: accept and callback p50/p99/max in ms over the measured requests
// (those due after the warm-up), non-2xx answers, errors and callbacks missing after the wait.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const o = JSON.parse(process.argv[2]!) as {
  port?: number; ports?: number[]; rate: number; seconds: number; warmup: number; callbacks: boolean; waitMs?: number;
  /** A file for every measured request's due, answered and callback times (wall-clock ms; bench/hops.ts). */
  dump?: string;
};
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';

const total = Math.round(o.rate * (o.warmup + o.seconds));
const first = Math.round(o.rate * o.warmup); // requests before this index are warm-up
const due = new Float64Array(total);
const answered = new Float64Array(total).fill(NaN);
const called = new Float64Array(total).fill(NaN);
let non2xx = 0;
let errors = 0;
let callbacks = 0;
let sendLag = 0;

const rx = createServer((req, res) => {
  const i = Number(req.url!.slice(4));
  req.resume();
  req.on('end', () => {
    if (Number.isInteger(i) && i >= 0 && i < total && Number.isNaN(called[i]!)) {
      called[i] = performance.now();
      callbacks++;
    }
    res.writeHead(200).end();
  });
});
rx.keepAliveTimeout = 30_000;
await new Promise<void>((r) => rx.listen(0, '127.0.0.1', r));
const cb = `http://127.0.0.1:${(rx.address() as AddressInfo).port}/cb/`;

const pools = (o.ports ?? [o.port!]).map((port) =>
  new Pool(`http://127.0.0.1:${port}`, { connections: 512, pipelining: 1, keepAliveTimeout: 30_000 }));
let pending = 0;

function send(i: number): void {
  pending++;
  const body = JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: `${cb}${i}` });
  pools[i % pools.length]!
    .request({ path: '/api/v1/charging-session', method: 'POST', headers: { 'content-type': 'application/json' }, body })
    .then(async (res) => {
      await res.body.dump();
      answered[i] = performance.now();
      if (res.statusCode < 200 || res.statusCode > 299) non2xx++;
    })
    .catch(() => {
      answered[i] = performance.now();
      errors++;
    })
    .finally(() => pending--);
}

const t0 = performance.now() + 20;
for (let i = 0; i < total; i++) due[i] = t0 + (i * 1000) / o.rate;
await new Promise<void>((done) => {
  let next = 0;
  const tick = () => {
    const now = performance.now();
    while (next < total && due[next]! <= now) {
      // How far behind schedule this generator itself sends: its own limit, not the server's.
      if (next >= first) sendLag = Math.max(sendLag, now - due[next]!);
      send(next++);
    }
    if (next >= total) return done();
    setTimeout(tick, Math.max(0, Math.min(1, due[next]! - performance.now())));
  };
  tick();
});

// Answers, then callbacks (measured ones only), within the wait.
const end = performance.now() + (o.waitMs ?? 15_000);
while (pending > 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 10));
const measured = total - first;
const wanted = () => {
  let n = 0;
  for (let i = first; i < total; i++) if (!Number.isNaN(called[i]!)) n++;
  return n;
};
while (o.callbacks && wanted() < measured && performance.now() < end) await new Promise((r) => setTimeout(r, 10));

function stats(at: Float64Array): { p50: number; p99: number; max: number; n: number } {
  const xs: number[] = [];
  for (let i = first; i < total; i++) if (!Number.isNaN(at[i]!)) xs.push(at[i]! - due[i]!);
  xs.sort((a, b) => a - b);
  const q = (p: number) => (xs.length ? Math.round(xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]! * 100) / 100 : NaN);
  return { p50: q(0.5), p99: q(0.99), max: xs.length ? Math.round(xs.at(-1)! * 100) / 100 : NaN, n: xs.length };
}

if (o.dump) {
  // On the wall clock that bench/trace.ts uses in the server, so the two join by request.
  const at = (xs: Float64Array, i: number) => (Number.isNaN(xs[i]!) ? null : performance.timeOrigin + xs[i]!);
  const rows: string[] = [];
  for (let i = first; i < total; i++) rows.push(JSON.stringify([i, at(due, i), at(answered, i), at(called, i)]));
  writeFileSync(o.dump, `${rows.join('\n')}\n`);
}
process.stdout.write(`${JSON.stringify({
  rate: o.rate, seconds: o.seconds, measured, non2xx, errors, send_lag_max_ms: Math.round(sendLag * 100) / 100,
  accept: stats(answered),
  callback: o.callbacks ? { ...stats(called), missing: measured - wanted() } : null,
})}\n`);
await Promise.all(pools.map((p) => p.close()));
rx.closeAllConnections();
rx.close();
