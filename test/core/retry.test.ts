import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffMs, classify, parseRetryAfter } from '../../src/core/retry.ts';

describe('delivery outcome', () => {
  it('classifies per SPEC §2', () => {
    const c = (http_status: number | null, error: string | null = null) => classify({ http_status, error });
    assert.equal(c(200), 'delivered');
    assert.equal(c(204), 'delivered');
    for (const s of [408, 429, 500, 502, 503, 599]) assert.equal(c(s), 'retry', String(s));
    assert.equal(c(null, 'ECONNREFUSED'), 'retry');
    assert.equal(c(null, 'timeout'), 'retry');
    for (const s of [301, 302, 400, 401, 404, 410, 422]) assert.equal(c(s), 'failed', String(s));
  });
});

describe('backoff with full jitter', () => {
  const opts = { baseMs: 1000, maxMs: 60_000 };
  it('doubles the ceiling per attempt and caps it', () => {
    const top = () => 0.999999;
    assert.equal(backoffMs(1, opts, top, null), 999);
    assert.equal(backoffMs(2, opts, top, null), 1999);
    assert.equal(backoffMs(4, opts, top, null), 7999);
    assert.equal(backoffMs(30, opts, top, null), 59_999);
    assert.equal(backoffMs(3, opts, () => 0, null), 0);
    assert.equal(backoffMs(3, opts, () => 0.5, null), 2000);
  });
  it('honours Retry-After as a floor, capped at the maximum', () => {
    assert.equal(backoffMs(1, opts, () => 0, 5000), 5000);
    assert.equal(backoffMs(1, opts, () => 0, 10 * 60_000), 60_000);
    assert.equal(backoffMs(10, opts, () => 0.999, 10), backoffMs(10, opts, () => 0.999, null));
  });
  it('parses delta-seconds and HTTP dates', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter(undefined, now), null);
  });
});
