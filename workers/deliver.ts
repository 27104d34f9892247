import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { request, type Dispatcher } from 'undici';
import { enter } from '../src/core/gate.ts';
import { errorCode, isTimeout } from '../src/core/httperror.ts';
import { REFUSED_BY_POLICY, parseRetryAfter } from '../src/core/retry.ts';
import type { DeliverTask, DeliverItem, DeliveryResult, ProxySettings } from '../src/core/types.ts';
import { URL_FORBIDDEN_CHAR_RE } from '../src/core/validate.ts';
import { checkAddress, checkHost, compilePolicy, type UrlPolicy } from '../src/core/urlpolicy.ts';
import { outboundCache } from './outbound.ts';

// Callback POSTs with undici (the built-in fetch costs ~10x the CPU per request).
// One dispatcher per worker thread keeps connections to each receiver alive across tasks.
// Through a forward proxy (HTTP_PROXY / HTTPS_PROXY) the proxy resolves the target's name,
// so the URL policy is judged on the URL text only (checkHost below); the resolved-address
// check (guardedLookup) guards the direct connections: no proxy, or a NO_PROXY host.

/** Receivers' answers are read up to this many bytes and then dropped: nobody needs them. */
const MAX_RESPONSE_BYTES = 64 * 1024;
const POLICY_ERROR = 'CG_REFUSED_BY_POLICY';

// One process has one policy; tasks carry it so the thread needs no config of its own.
let policy: UrlPolicy = compilePolicy(null);
let policyKey = 'null';

function usePolicy(allowed: string[] | null): void {
  const key = JSON.stringify(allowed);
  if (key === policyKey) return;
  policy = compilePolicy(allowed);
  policyKey = key;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * The resolver the sockets use: every address a name resolves to is checked before the
 * connection is made, so a name that passed at accept time and later resolves to a
 * metadata address (DNS rebinding) is still refused.
 */
function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    for (const a of addresses) {
      const v = checkAddress(policy, hostname.toLowerCase(), a.address);
      if (!v.ok) return callback(Object.assign(new Error(v.reason), { code: POLICY_ERROR }), []);
    }
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
    callback(null, first.address, first.family);
  });
}

// Bounded per origin so one slow receiver cannot hold every socket of the thread; idle
// sockets retired before the receiver closes them (why: src/core/keepalive.ts).
const dispatcherFor = outboundCache({ connections: 64, lookup: guardedLookup });

/** An attempt's error as recorded: every deadline is `timeout` (the undici code, if any, as detail). */
export function errorOf(err: unknown): { code: string; detail: string | null } {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.code === POLICY_ERROR) return { code: REFUSED_BY_POLICY, detail: e.message ?? null };
  if (e?.cause?.code === POLICY_ERROR) return { code: REFUSED_BY_POLICY, detail: e.cause.message ?? null };
  const code = errorCode(err);
  if (isTimeout(err)) return { code: 'timeout', detail: code === 'timeout' ? null : code };
  return { code, detail: null };
}

export async function post(item: DeliverItem, timeoutMs: number, dispatcher: Dispatcher = dispatcherFor(null)): Promise<DeliveryResult> {
  const started_at = Date.now();
  const t0 = performance.now();
  const failed = (code: string, detail: string | null): DeliveryResult => ({
    id: item.id,
    started_at,
    duration_ms: Math.round(performance.now() - t0),
    http_status: null,
    error: code,
    retry_after_ms: null,
    detail,
  });
  // The URL is POSTed exactly as accepted or not at all: a row written before the accept
  // check refused control characters must not be silently repaired by the URL parser.
  if (URL_FORBIDDEN_CHAR_RE.test(item.url)) return failed(REFUSED_BY_POLICY, 'control characters or spaces in the callback URL');
  // IP literals never reach the resolver, so their check happens here.
  const verdict = checkHost(policy, new URL(item.url).hostname);
  if (!verdict.ok) return failed(REFUSED_BY_POLICY, verdict.reason ?? null);
  try {
    // undici's request() does not follow redirects: a 3xx is the receiver's answer.
    const res = await request(item.url, {
      method: 'POST',
      body: item.body,
      headers: { 'content-type': 'application/json', ...item.headers },
      dispatcher,
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
    const { code, detail } = errorOf(err);
    return failed(code, detail);
  }
}

/** null: the main thread cancelled the task before it started, and nothing was POSTed. */
export async function deliver(task: DeliverTask): Promise<DeliveryResult[] | null> {
  if (!enter(task.gate)) return null;
  usePolicy(task.allowedHosts);
  const dispatcher = dispatcherFor(task.proxy);
  return Promise.all(task.items.map((item) => post(item, task.timeoutMs, dispatcher)));
}

/** For tests: judge URLs under a policy without a task. */
export { usePolicy };

/** For tests: the thread's dispatcher under these proxy settings. */
export const dispatcherForProxy = (proxy: ProxySettings | null): Dispatcher => dispatcherFor(proxy);
