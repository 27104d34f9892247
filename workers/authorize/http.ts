import { request } from 'undici';
import { errorCode, isTimeout } from '../../src/core/httperror.ts';
import type { ProxySettings } from '../../src/core/types.ts';
import { outboundCache } from '../outbound.ts';
import { failed, type HttpAnswer, type Lookup } from './answer.ts';

// The upstream POST, with undici (as workers/deliver.ts). One Agent per thread keeps
// connections to the authority alive; the deadline covers connect, headers and body, so a
// hanging connection costs at most the deadline.

/** Authorization answers are small; a body past this is not read and counts as unparseable. */
const MAX_BODY_BYTES = 64 * 1024;

// Idle sockets retired before the authority closes them (why: src/core/keepalive.ts);
// through HTTP_PROXY / HTTPS_PROXY unless NO_PROXY names the authority (workers/outbound.ts).
const dispatcherFor = outboundCache();

export interface HttpCall {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** POSTs and reads the answer within timeoutMs; a failure to get one is a `failed` Lookup. */
export async function post(call: HttpCall, budgetMs: number, proxy: ProxySettings | null = null): Promise<HttpAnswer | Lookup> {
  // AbortSignal.timeout and undici's timeouts take whole milliseconds.
  const timeoutMs = Math.floor(budgetMs);
  if (timeoutMs <= 0) return failed('timeout', 'no time left');
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await request(call.url, {
      method: 'POST',
      body: call.body,
      headers: call.headers,
      dispatcher: dispatcherFor(proxy),
      signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.body.destroy();
        return { status: res.statusCode, text: null };
      }
      chunks.push(chunk);
    }
    return { status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') };
  } catch (err) {
    const code = errorCode(err);
    if (isTimeout(err) || signal.aborted) return failed('timeout', code);
    return failed('upstream_unreachable', code);
  }
}
