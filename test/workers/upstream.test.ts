import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Decision } from '../../src/core/types.ts';

import { ocpiInfo, startAuthority, type Authority, type Behaviour } from '../support/authority.ts';
import { authorize, item, settings, STATION, task } from '../support/authorize.ts';

// Every mapping row of the two upstream protocols, against a real HTTP authority on port 0:
// what it answers (or fails to) and the decision, reason, source and cache entry that follow.

const BUDGET_MS = 300;
const brief = (d: Decision) => `${d.status}/${d.reason}/${d.source}`;

/** The deadline is short only where a timeout is expected, so load never makes an answer late. */
async function decideWith(a: Authority, protocol: 'json' | 'ocpi', token: string, opts: { extra?: Record<string, unknown>; expectTimeout?: boolean } = {}): Promise<Decision> {
  const base = protocol === 'ocpi' ? a.url('/ocpi/emsp/2.2.1/tokens/') : a.url('/authorize');
  const s = settings(base, { protocol, token: protocol === 'ocpi' ? 'b2NwaS1jcmVkZW50aWFscw==' : null, ...opts.extra });
  const [d] = await authorize(task(s, [item(token)], { budgetMs: opts.expectTimeout ? BUDGET_MS : 10_000 }));
  return d!;
}

describe('json protocol', () => {
  const rows: Array<{ name: string; answer: Behaviour; expect: string; cacheForMs?: number | null }> = [
    { name: 'allowed', answer: { status: 200, json: { status: 'allowed' } }, expect: 'allowed/allowed/upstream', cacheForMs: 300_000 },
    { name: 'allowed with cache_for_s', answer: { status: 200, json: { status: 'allowed', reason: 'contract_ok', cache_for_s: 120 } }, expect: 'allowed/contract_ok/upstream', cacheForMs: 120_000 },
    { name: 'allowed with cache_for_s 0', answer: { status: 200, json: { status: 'allowed', cache_for_s: 0 } }, expect: 'allowed/allowed/upstream', cacheForMs: 0 },
    { name: 'denied with a reason', answer: { status: 200, json: { status: 'not_allowed', reason: 'no_credit' } }, expect: 'not_allowed/no_credit/upstream', cacheForMs: 60_000 },
    { name: 'denied, reason not a plain word', answer: { status: 200, json: { status: 'not_allowed', reason: 'DROP TABLE acl; --' } }, expect: 'not_allowed/not_allowed/upstream', cacheForMs: 60_000 },
    { name: 'slow past the deadline', answer: { delayMs: BUDGET_MS * 4, then: { status: 200, json: { status: 'allowed' } } }, expect: 'unknown/timeout/offline_rule' },
    { name: 'hanging connection', answer: { hang: true }, expect: 'unknown/timeout/offline_rule' },
    { name: 'stalls mid-body', answer: { stall: true }, expect: 'unknown/timeout/offline_rule' },
    { name: '500', answer: { status: 500, text: 'oops' }, expect: 'unknown/upstream_error/offline_rule' },
    { name: '503 with a valid-looking body', answer: { status: 503, json: { status: 'allowed' } }, expect: 'unknown/upstream_error/offline_rule' },
    { name: '404', answer: { status: 404, json: { status: 'not_allowed' } }, expect: 'unknown/upstream_error/offline_rule' },
    { name: 'not JSON', answer: { status: 200, text: '<html>ok</html>' }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'a JSON array', answer: { status: 200, json: [{ status: 'allowed' }] }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'unknown status value', answer: { status: 200, json: { status: 'maybe' } }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'status missing', answer: { status: 200, json: { allowed: true } }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'reason not a string', answer: { status: 200, json: { status: 'allowed', reason: 7 } }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'cache_for_s not a number', answer: { status: 200, json: { status: 'allowed', cache_for_s: 'soon' } }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'negative cache_for_s', answer: { status: 200, json: { status: 'allowed', cache_for_s: -1 } }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'body over 64 KiB', answer: { status: 200, text: JSON.stringify({ status: 'allowed', pad: 'x'.repeat(70_000) }) }, expect: 'unknown/upstream_bad_answer/offline_rule' },
  ];
  const byToken = new Map<string, Behaviour>();
  rows.forEach((r, i) => byToken.set(`json-row-${i}-0123456789abcdef`, r.answer));
  let a: Authority;
  before(async () => {
    a = await startAuthority((call) => byToken.get(String(call.json?.driver_token)) ?? { status: 500 });
  });
  after(() => a.close());

  rows.forEach((r, i) => {
    it(r.name, async () => {
      const d = await decideWith(a, 'json', `json-row-${i}-0123456789abcdef`, { expectTimeout: r.expect.includes('/timeout/') });
      assert.equal(brief(d), r.expect);
      if (r.cacheForMs === undefined) {
        assert.equal(d.cache_put, undefined, 'no answer, nothing cached');
        assert.ok(d.upstream_error, 'the failure is reported for the log');
      } else {
        assert.ok(d.cache_put);
        assert.equal(d.cache_put.fresh_until - d.cache_put.stored_at, r.cacheForMs);
        assert.equal(d.cache_put.status, d.status);
        assert.equal(d.cache_put.station_id, STATION);
        assert.match(d.cache_put.token_hash, /^[0-9a-f]{64}$/, 'the cache key is the token hash');
      }
    });
  });

  it('POSTs {station_id, driver_token} as JSON, with a Bearer token when configured', async () => {
    const token = 'json-shape-0123456789abcdef';
    byToken.set(token, { status: 200, json: { status: 'allowed' } });
    const before = a.calls.length;
    await decideWith(a, 'json', token, { extra: { token: 's3cret' } });
    const call = a.calls[before]!;
    assert.equal(call.method, 'POST');
    assert.equal(call.path, '/authorize');
    assert.equal(call.headers['content-type'], 'application/json');
    assert.equal(call.headers.authorization, 'Bearer s3cret');
    assert.deepEqual(call.json, { station_id: STATION, driver_token: token });
  });

  it('an unknown-token answer marks a token without a local entry as an unknown sighting', async () => {
    const token = 'json-unknown-0123456789abcdef';
    byToken.set(token, { status: 200, json: { status: 'not_allowed', reason: 'unknown_token' } });
    const d = await decideWith(a, 'json', token);
    assert.equal(brief(d), 'not_allowed/unknown_token/upstream');
    assert.equal(d.unknown_token, true);
  });

  it('a refused connection is upstream_unreachable', async () => {
    const dead = await startAuthority(() => ({ status: 200 }));
    const url = dead.url('/authorize');
    await dead.close();
    const [d] = await authorize(task(settings(url), [item('json-dead-0123456789abcdef')]));
    assert.equal(brief(d!), 'unknown/upstream_unreachable/offline_rule');
    assert.match(d!.upstream_error!, /ECONNREFUSED/);
  });
});

describe('OCPI 2.2.1 protocol', () => {
  const rows: Array<{ name: string; answer: Behaviour; expect: string; cached?: boolean }> = [
    { name: 'ALLOWED', answer: { status: 200, json: ocpiInfo('ALLOWED') }, expect: 'allowed/allowed/upstream', cached: true },
    { name: 'BLOCKED', answer: { status: 200, json: ocpiInfo('BLOCKED') }, expect: 'not_allowed/blocked/upstream', cached: true },
    { name: 'EXPIRED', answer: { status: 200, json: ocpiInfo('EXPIRED') }, expect: 'not_allowed/expired/upstream', cached: true },
    { name: 'NO_CREDIT', answer: { status: 200, json: ocpiInfo('NO_CREDIT') }, expect: 'not_allowed/no_credit/upstream', cached: true },
    { name: 'NOT_ALLOWED', answer: { status: 200, json: ocpiInfo('NOT_ALLOWED') }, expect: 'not_allowed/not_allowed/upstream', cached: true },
    { name: 'ALLOWED, whitelist NEVER: not cached', answer: { status: 200, json: ocpiInfo('ALLOWED', 'NEVER') }, expect: 'allowed/allowed/upstream', cached: false },
    { name: 'unknown token: HTTP 404 + 2004', answer: { status: 404, json: { status_code: 2004, status_message: 'Unknown Token', timestamp: '2025-01-01T00:00:00Z' } }, expect: 'not_allowed/unknown_token/upstream', cached: true },
    { name: 'unknown token: HTTP 200 + 2004', answer: { status: 200, json: { status_code: 2004, timestamp: '2025-01-01T00:00:00Z' } }, expect: 'not_allowed/unknown_token/upstream', cached: true },
    { name: '404 without 2004 (a wrong URL)', answer: { status: 404, text: 'Not Found' }, expect: 'unknown/upstream_error/offline_rule' },
    { name: '500', answer: { status: 500, json: { status_code: 3000, timestamp: '2025-01-01T00:00:00Z' } }, expect: 'unknown/upstream_error/offline_rule' },
    { name: '3000 generic server error', answer: { status: 200, json: { status_code: 3000, timestamp: '2025-01-01T00:00:00Z' } }, expect: 'unknown/upstream_error/offline_rule' },
    { name: '3001 unable to use the client API', answer: { status: 200, json: { status_code: 3001, timestamp: '2025-01-01T00:00:00Z' } }, expect: 'unknown/upstream_error/offline_rule' },
    { name: '2002 not enough information', answer: { status: 200, json: { status_code: 2002, timestamp: '2025-01-01T00:00:00Z' } }, expect: 'unknown/upstream_error/offline_rule' },
    { name: '4002 hub timeout', answer: { status: 200, json: { status_code: 4002, timestamp: '2025-01-01T00:00:00Z' } }, expect: 'unknown/upstream_error/offline_rule' },
    { name: '401 (wrong credentials token)', answer: { status: 401, text: '' }, expect: 'unknown/upstream_error/offline_rule' },
    { name: 'not JSON', answer: { status: 200, text: 'ALLOWED' }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'status_code missing', answer: { status: 200, json: { data: ocpiInfo('ALLOWED').data } }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'data missing', answer: { status: 200, json: { status_code: 1000, timestamp: '2025-01-01T00:00:00Z' } }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'allowed not an AllowedType', answer: { status: 200, json: ocpiInfo('MAYBE') }, expect: 'unknown/upstream_bad_answer/offline_rule' },
    { name: 'hanging connection', answer: { hang: true }, expect: 'unknown/timeout/offline_rule' },
  ];
  const byUid = new Map<string, Behaviour>();
  rows.forEach((r, i) => byUid.set(`ocpi-row-${i}-0123456789abcdef`, r.answer));
  let a: Authority;
  before(async () => {
    a = await startAuthority((call) => {
      const m = /^\/ocpi\/emsp\/2\.2\.1\/tokens\/([^/]+)\/authorize\?type=RFID$/.exec(call.path);
      return (m && byUid.get(decodeURIComponent(m[1]!))) || { status: 404, text: 'no such route' };
    });
  });
  after(() => a.close());

  rows.forEach((r, i) => {
    it(r.name, async () => {
      const d = await decideWith(a, 'ocpi', `ocpi-row-${i}-0123456789abcdef`, { expectTimeout: r.expect.includes('/timeout/') });
      assert.equal(brief(d), r.expect);
      assert.equal(d.cache_put !== undefined, r.cached === true, 'cached only when the answer is a verdict that may be kept');
    });
  });

  it('POSTs LocationReferences to {url}/{token_uid}/authorize with Authorization: Token and request ids', async () => {
    const token = 'ocpi~shape.0123456789abcdef';
    byUid.set(token, { status: 200, json: ocpiInfo('ALLOWED') });
    const before = a.calls.length;
    await decideWith(a, 'ocpi', token);
    const call = a.calls[before]!;
    assert.equal(call.method, 'POST');
    assert.equal(call.path, `/ocpi/emsp/2.2.1/tokens/${encodeURIComponent(token)}/authorize?type=RFID`, 'one slash between base and uid; the type');
    assert.equal(call.headers.authorization, 'Token b2NwaS1jcmVkZW50aWFscw==');
    assert.equal(call.headers['content-type'], 'application/json');
    assert.match(String(call.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.deepEqual(call.json, { location_id: STATION });
  });
});
