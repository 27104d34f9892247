// Closed-loop saturation load: wrk when installed (C, one thread on the load core), otherwise
// autocannon in its own process on the load core (bench/cannon.ts). Both report the same shape.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { has, output, pinned } from './lib.ts';

export interface Saturation {
  tool: 'wrk' | 'autocannon';
  seconds: number;
  /** 2xx answers per second over the run. */
  rps2xx: number;
  non2xx: number;
  errors: number;
  /** Latency of answered requests, ms. */
  p50: number;
  p99: number;
  max: number;
}

const HERE = fileURLToPath(new URL('.', import.meta.url));
// wrk exits 1 after printing its version for -v: look it up on PATH instead. BENCH_TOOL=autocannon forces the fallback.
const tool: 'wrk' | 'autocannon' = process.env.BENCH_TOOL === 'autocannon' || !has('sh', ['-c', 'command -v wrk']) ? 'autocannon' : 'wrk';
export { tool as loadTool };

/** The wrk script: POSTs the body, prints one JSON line of figures (latency in µs) at the end. */
// One file per run: pg2 starts two wrk at once, and rewriting a shared file under a starting
// wrk hands it an empty script (no body, no figures), which is how CI once saw all non-2xx.
let scripts = 0;
function wrkScript(dir: string, body: string): string {
  const path = join(dir, `post-${process.pid}-${++scripts}.lua`);
  writeFileSync(path, `wrk.method = "POST"
wrk.body = ${JSON.stringify(body)}
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('JSON{"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"p50":%d,"p99":%d,"max":%d}\\n', summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`);
  return path;
}

export async function saturate(dir: string, port: number, connections: number, seconds: number, body: string): Promise<Saturation> {
  const url = `http://127.0.0.1:${port}/api/v1/charging-session`;
  if (tool === 'wrk') {
    const [cmd, args] = pinned('load', 'wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '30s', '-s', wrkScript(dir, body), url]);
    const out = await output(cmd, args);
    const line = out.split('\n').find((l) => l.startsWith('JSON{'));
    if (!line) throw new Error(`wrk printed no figures:\n${out}`);
    const r = JSON.parse(line.slice(4)) as Record<string, number>;
    const secs = r.duration_us! / 1e6;
    const errors = r.connect! + r.read! + r.write! + r.timeout!;
    return {
      tool, seconds: secs, rps2xx: Math.round((r.requests! - r.status!) / secs), non2xx: r.status!, errors,
      p50: r.p50! / 1000, p99: r.p99! / 1000, max: r.max! / 1000,
    };
  }
  const [cmd, args] = pinned('load', process.execPath, ['--disable-warning=TimeoutNegativeWarning', join(HERE, 'cannon.ts'),
    JSON.stringify({ url, connections, seconds, body })]);
  return { tool, ...(JSON.parse(await output(cmd, args)) as Omit<Saturation, 'tool'>) };
}
