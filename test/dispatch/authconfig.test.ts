import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { authorizerPlan, upstreamMarginMs } from '../../src/dispatch/authorizer.ts';

// The authorizer's settings: defaults, validation, and what the worker tasks receive.

describe('authorizer configuration', () => {
  it('has documented defaults and no upstream unless AUTHORIZER_URL is set', () => {
    const c = loadConfig({});
    assert.deepEqual(
      [c.authorizerMaxConcurrency, c.authorizerBreakerFailures, c.authorizerBreakerOpenMs, c.authorizerCacheTtlS, c.authorizerCacheNegativeTtlS, c.authorizerCacheMaxEntries, c.offlineCacheMaxAgeS, c.offlineAllowUnknown],
      [32, 5, 30_000, 300, 60, 10_000, 86_400, false],
    );
    assert.equal(authorizerPlan(c), null);
  });

  it('validates every knob and names it', () => {
    assert.equal(loadConfig({ OFFLINE_ALLOW_UNKNOWN: 'TRUE' }).offlineAllowUnknown, true);
    assert.equal(loadConfig({ OFFLINE_ALLOW_UNKNOWN: 'no' }).offlineAllowUnknown, false);
    assert.throws(() => loadConfig({ OFFLINE_ALLOW_UNKNOWN: 'maybe' }), /invalid OFFLINE_ALLOW_UNKNOWN="maybe": expected true or false/);
    assert.throws(() => loadConfig({ AUTHORIZER_MAX_CONCURRENCY: '0' }), /AUTHORIZER_MAX_CONCURRENCY/);
    assert.throws(() => loadConfig({ AUTHORIZER_BREAKER_FAILURES: 'x' }), /AUTHORIZER_BREAKER_FAILURES/);
    assert.throws(() => loadConfig({ AUTHORIZER_BREAKER_OPEN_MS: '0' }), /AUTHORIZER_BREAKER_OPEN_MS/);
    assert.throws(() => loadConfig({ AUTHORIZER_CACHE_TTL_S: '-1' }), /AUTHORIZER_CACHE_TTL_S/);
    assert.throws(() => loadConfig({ AUTHORIZER_CACHE_MAX_ENTRIES: '0' }), /AUTHORIZER_CACHE_MAX_ENTRIES/);
    assert.throws(() => loadConfig({ OFFLINE_CACHE_MAX_AGE_S: '1.5' }), /OFFLINE_CACHE_MAX_AGE_S/);
    assert.throws(() => loadConfig({}, { OFFLINE_ALLOW_UNKNOWN: 'x' }), /invalid --offline-allow-unknown/);
    assert.throws(() => loadConfig({ AUTHORIZER_URL: 'http://127.0.0.1:9/ocpi', AUTHORIZER_PROTOCOL: 'ocpi' }), /AUTHORIZER_TOKEN.*ocpi/);
    assert.equal(loadConfig({ AUTHORIZER_PROTOCOL: 'ocpi' }).authorizerProtocol, 'ocpi', 'no URL, nothing to check');
  });

  it('gives workers plain settings: concurrency split across threads, one shared breaker', () => {
    const c = loadConfig({ AUTHORIZER_URL: 'http://127.0.0.1:9/a', WORKERS: '4', AUTHORIZER_MAX_CONCURRENCY: '10', AUTHORIZER_CACHE_TTL_S: '0', OFFLINE_CACHE_MAX_AGE_S: '60' });
    const plan = authorizerPlan(c)!;
    assert.equal(plan.settings.maxConcurrent, 2, 'floor(10 / 4): the total stays within the bound');
    assert.equal(plan.settings.cacheTtlMs, 0);
    assert.deepEqual(plan.decide, { offlineCacheMaxAgeMs: 60_000 });
    assert.ok(plan.settings.breakerState instanceof SharedArrayBuffer);
    assert.equal(authorizerPlan(loadConfig({ AUTHORIZER_URL: 'http://x/a', WORKERS: '8', AUTHORIZER_MAX_CONCURRENCY: '3' }))!.settings.maxConcurrent, 1, 'at least one per thread');
  });

  it('the upstream step ends a margin inside the decision deadline', () => {
    assert.equal(upstreamMarginMs(30_000), 1000, 'margin capped at 1 s');
    assert.equal(upstreamMarginMs(1000), 100);
    assert.equal(upstreamMarginMs(100), 20, 'margin at least 20 ms');
  });
});
