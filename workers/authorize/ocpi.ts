import { randomUUID } from 'node:crypto';
import { failed, parseObject, type HttpAnswer, type Lookup } from './answer.ts';

// AUTHORIZER_PROTOCOL=ocpi: OCPI 2.2.1 real-time authorization (Tokens module §12.2.2.2),
// POST {AUTHORIZER_URL}/{token_uid}/authorize?type={token_type} with a LocationReferences
// body (the type defaults to RFID on the eMSP's side too, but is always sent), the answer
// an OCPI envelope {data: AuthorizationInfo, status_code, status_message?, timestamp}.

const ALLOWED_TYPES = new Set(['ALLOWED', 'BLOCKED', 'EXPIRED', 'NO_CREDIT', 'NOT_ALLOWED']);

/**
 * The station is the OCPI location (its UUID fits CiString(36)). The credentials token goes
 * into the header exactly as configured: OCPI 2.2.1 §4.1.2 wants it Base64-encoded, many
 * 2.1.1/2.2 peers want it plain, so the operator sets the form their eMSP expects.
 */
export function ocpiRequest(baseUrl: string, token: string | null, station: string, driverToken: string, tokenType = 'RFID') {
  const url = `${baseUrl.replace(/\/+$/, '')}/${encodeURIComponent(driverToken)}/authorize?type=${encodeURIComponent(tokenType)}`;
  const id = randomUUID();
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json',
    'x-request-id': id,
    'x-correlation-id': id,
  };
  if (token !== null) headers.authorization = `Token ${token}`;
  return { url, headers, body: JSON.stringify({ location_id: station }) };
}

export function ocpiAnswer(res: HttpAnswer): Lookup {
  const o = parseObject(res.text);
  const code = o && typeof o.status_code === 'number' && Number.isInteger(o.status_code) ? o.status_code : null;
  // "If the Token is not known, the response SHALL contain status code 2004" (with HTTP 404).
  // A 404 without 2004 is a wrong URL, not a verdict on the token.
  if (code === 2004 && (res.status === 404 || (res.status >= 200 && res.status <= 299))) {
    return { kind: 'answer', status: 'not_allowed', reason: 'unknown_token', cacheForMs: null, cacheable: true };
  }
  if (res.status < 200 || res.status > 299) return failed('upstream_error', `HTTP ${res.status}${code !== null ? ` OCPI ${code}` : ''}`);
  if (!o) return failed('upstream_bad_answer', res.text === null ? 'body over the size limit' : 'body is not a JSON object');
  if (code === null) return failed('upstream_bad_answer', 'status_code missing');
  // 2xxx (our request), 3xxx (their server), 4xxx (a hub): no verdict on the token.
  if (code < 1000 || code > 1999) return failed('upstream_error', `OCPI ${code}`);
  const data = o.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return failed('upstream_bad_answer', 'data is not an AuthorizationInfo');
  const info = data as Record<string, unknown>;
  if (typeof info.allowed !== 'string' || !ALLOWED_TYPES.has(info.allowed)) return failed('upstream_bad_answer', 'allowed is not an AllowedType');
  // Token.whitelist NEVER: "only realtime authorization is allowed", so the answer is not kept.
  const tokenInfo = info.token as Record<string, unknown> | null | undefined;
  const cacheable = !(tokenInfo && typeof tokenInfo === 'object' && tokenInfo.whitelist === 'NEVER');
  const status = info.allowed === 'ALLOWED' ? 'allowed' : 'not_allowed';
  return { kind: 'answer', status, reason: info.allowed.toLowerCase(), cacheForMs: null, cacheable };
}
