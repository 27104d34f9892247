// autocannon in its own process (the fallback when wrk is not installed), so that it runs
// on the load core and not inside the bench. Prints one JSON line in bench/saturate.ts's shape.
//
// --disable-warning=TimeoutNegativeWarning: autocannon's request timeouts use `retimer`,
// which re-arms a late-firing timer with `rescheduled - elapsed`; under load that goes
// negative and Node 24 warns ("-4 is a negative number") and uses 1 ms, which is harmless.
import autocannon from 'autocannon';

const o = JSON.parse(process.argv[2]!) as { url: string; connections: number; seconds: number; body: string };
const r = await autocannon({
  url: o.url, method: 'POST', headers: { 'content-type': 'application/json' }, body: o.body,
  connections: o.connections, duration: o.seconds, timeout: 30,
});
process.stdout.write(`${JSON.stringify({
  seconds: o.seconds, rps2xx: Math.round(r['2xx'] / o.seconds), non2xx: r.non2xx, errors: r.errors,
  p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max,
})}\n`);
