import { cleanReason, failed, parseObject, type HttpAnswer, type Lookup } from './answer.ts';

// AUTHORIZER_PROTOCOL=json: POST AUTHORIZER_URL {"station_id","driver_token"}; a 2xx answer
// {"status":"allowed"|"not_allowed","reason"?,"cache_for_s"?} is the upstream's word.
// Anything else (another status code, another shape) means it could not answer.

/** Longest freshness an answer may ask for; a typo of a year must not pin a decision. */
export const MAX_CACHE_FOR_S = 7 * 86_400;

export function jsonRequest(url: string, token: string | null, station: string, driverToken: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return { url, headers, body: JSON.stringify({ station_id: station, driver_token: driverToken }) };
}

export function jsonAnswer(res: HttpAnswer): Lookup {
  if (res.status < 200 || res.status > 299) return failed('upstream_error', `HTTP ${res.status}`);
  const o = parseObject(res.text);
  if (!o) return failed('upstream_bad_answer', res.text === null ? 'body over the size limit' : 'body is not a JSON object');
  if (o.status !== 'allowed' && o.status !== 'not_allowed') return failed('upstream_bad_answer', 'status is not "allowed" or "not_allowed"');
  if (o.reason !== undefined && o.reason !== null && typeof o.reason !== 'string') return failed('upstream_bad_answer', 'reason is not a string');
  let cacheForMs: number | null = null;
  if (o.cache_for_s !== undefined && o.cache_for_s !== null) {
    const s = o.cache_for_s;
    if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) return failed('upstream_bad_answer', 'cache_for_s is not a number of seconds');
    cacheForMs = Math.floor(Math.min(s, MAX_CACHE_FOR_S) * 1000);
  }
  return { kind: 'answer', status: o.status, reason: cleanReason(o.reason, o.status), cacheForMs, cacheable: true };
}
