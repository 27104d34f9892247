import type { DeliveryResult } from './types.ts';

/** Error code of an attempt the callback URL policy refused. */
export const REFUSED_BY_POLICY = 'refused_by_policy';

export type Outcome = 'delivered' | 'retry' | 'failed';

/** SPEC §2: 2xx delivered; network error, timeout, 408, 429, 5xx retried; other statuses fail at once. */
export function classify(result: Pick<DeliveryResult, 'http_status' | 'error'>): Outcome {
  const s = result.http_status;
  // A target the URL policy refuses stays refused: retrying cannot help.
  if (s === null) return result.error === REFUSED_BY_POLICY ? 'failed' : 'retry';
  if (s >= 200 && s < 300) return 'delivered';
  if (s === 408 || s === 429 || s >= 500) return 'retry';
  return 'failed';
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/**
 * Exponential backoff with full jitter (AWS architecture blog): the ceiling doubles per
 * attempt from baseMs up to maxMs and the delay is uniform below it, so a burst of
 * failures does not retry in lockstep. A receiver's Retry-After is a floor, capped by maxMs.
 */
export function backoffMs(attempt: number, opts: BackoffOptions, random: () => number, retryAfterMs: number | null): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.floor(random() * ceiling);
  if (retryAfterMs !== null && retryAfterMs > jittered) return Math.min(opts.maxMs, retryAfterMs);
  return jittered;
}

/** Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}
