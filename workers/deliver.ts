import { Agent, request } from 'undici';
import type { DeliverTask, DeliverItem, DeliveryResult } from '../src/core/types.ts';
import { parseRetryAfter } from '../src/core/retry.ts';

// Callback POSTs with undici (the built-in fetch costs ~10x the CPU per request).
// One Agent per worker thread keeps connections to each receiver alive across tasks.

/** Receivers' answers are read up to this many bytes and then dropped: nobody needs them. */
const MAX_RESPONSE_BYTES = 64 * 1024;

const agent = new Agent({
  // Bounded per origin so one slow receiver cannot hold every socket of the thread.
  connections: 64,
  keepAliveTimeout: 10_000,
  keepAliveMaxTimeout: 60_000,
});

function errorCode(err: unknown): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timeout';
  return e?.code ?? e?.cause?.code ?? e?.name ?? 'error';
}

export async function post(item: DeliverItem, timeoutMs: number): Promise<DeliveryResult> {
  const started_at = Date.now();
  const t0 = performance.now();
  try {
    // undici's request() does not follow redirects: a 3xx is the receiver's answer.
    const res = await request(item.url, {
      method: 'POST',
      body: item.body,
      headers: { 'content-type': 'application/json', ...item.headers },
      dispatcher: agent,
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    await res.body.dump({ limit: MAX_RESPONSE_BYTES }).catch(() => undefined);
    return {
      id: item.id,
      started_at,
      duration_ms: Math.round(performance.now() - t0),
      http_status: res.statusCode,
      error: null,
      retry_after_ms: parseRetryAfter(res.headers['retry-after'], Date.now()),
    };
  } catch (err) {
    return {
      id: item.id,
      started_at,
      duration_ms: Math.round(performance.now() - t0),
      http_status: null,
      error: errorCode(err),
      retry_after_ms: null,
    };
  }
}

export function deliver(task: DeliverTask): Promise<DeliveryResult[]> {
  return Promise.all(task.items.map((item) => post(item, task.timeoutMs)));
}
