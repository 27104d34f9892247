import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { uuidv7 } from '../../src/core/uuid7.ts';

describe('uuidv7', () => {
  it('is an RFC 9562 version-7 UUID carrying the millisecond timestamp', () => {
    const at = Date.parse('2026-11-26T06:00:00.123Z');
    const id = uuidv7(at);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), at);
  });
  it('sorts by time and does not repeat', () => {
    const ids = Array.from({ length: 5000 }, (_, i) => uuidv7(1_800_000_000_000 + Math.floor(i / 10)));
    assert.equal(new Set(ids).size, ids.length);
    const firstOfEachMs = ids.filter((_, i) => i % 10 === 0);
    assert.deepEqual([...firstOfEachMs].sort(), firstOfEachMs);
  });
});
