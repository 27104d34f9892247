import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hashToken } from '../../src/core/token.ts';
import type { CachedAnswer, Decision } from '../../src/core/types.ts';
import { createAuthStore, type Decided } from '../../src/queue/authcache.ts';
import { openDb } from '../../src/queue/db.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { tempDir } from '../support/tmp.ts';

// What the main thread writes for the authorization chain: the cache bounded LRU-first,
// recency of used entries, unknown-token sightings counted per token and station.

const S1 = '123e4567-e89b-12d3-a456-426614174000';

function setup(t: { after: (fn: () => void) => void }, maxEntries: number, maxUnknown?: number) {
  const db = openDb(join(tempDir(t), 'a.db'), { busyTimeoutMs: 1000 });
  migrate(db);
  t.after(() => db.close());
  const store = createAuthStore(db, { maxEntries, ...(maxUnknown ? { maxUnknown } : {}) });
  return { db, store };
}

const put = (id: string, token: string, at: number): Decision => {
  const cache_put: CachedAnswer = { token_hash: hashToken(token), token_type: 'RFID', station_id: S1, status: 'allowed', reason: 'allowed', stored_at: at, fresh_until: at + 1000 };
  return { id, status: 'allowed', reason: 'allowed', source: 'upstream', latency_ms: 1, cache_put };
};

describe('authorizer cache writes', () => {
  it('keeps at most maxEntries rows, dropping the least recently used', (t) => {
    const { db, store } = setup(t, 3);
    const none = new Map<string, Decided>();
    store.record([put('1', 'token-a-0123456789abcdef', 1), put('2', 'token-b-0123456789abcdef', 2), put('3', 'token-c-0123456789abcdef', 3)], none, 3);
    // a is used again (a cache hit): b is now the least recently used.
    store.record([{ id: '4', status: 'allowed', reason: 'allowed', source: 'cache', latency_ms: 0, cache_used: { token_hash: hashToken('token-a-0123456789abcdef'), token_type: 'RFID', station_id: S1 } }], none, 10);
    store.record([put('5', 'token-d-0123456789abcdef', 11)], none, 11);
    const left = (db.prepare('SELECT token_hash FROM authorizer_cache ORDER BY last_used_at').pluck().all() as string[]).map((h) =>
      ['a', 'b', 'c', 'd'].find((x) => hashToken(`token-${x}-0123456789abcdef`) === h),
    );
    assert.deepEqual(left, ['c', 'a', 'd']);
    // A new answer for a cached key replaces it without growing the table.
    store.record([put('6', 'token-d-0123456789abcdef', 12)], none, 12);
    assert.equal(db.prepare('SELECT COUNT(*) FROM authorizer_cache').pluck().get(), 3);
    assert.equal(db.prepare("SELECT COUNT(*) FROM authorizer_cache WHERE token_hash LIKE '%token%'").pluck().get(), 0, 'never the token itself');
  });

  it('counts unknown-token sightings per token and station, masked and hashed, bounded', (t) => {
    const { db, store } = setup(t, 10, 2);
    const tokens = ['unknown-one-0123456789abcdef', 'unknown-two-0123456789abcdef', 'unknown-three-0123456789abcdef'];
    const refused = (id: string): Decision => ({ id, status: 'not_allowed', reason: 'unknown_token', source: 'local_list', latency_ms: 0, unknown_token: true });
    const req = (id: string, token: string, station = S1): [string, Decided] => [id, { id, station_id: station, driver_token: token }];
    store.record([refused('r1'), refused('r2')], new Map([req('r1', tokens[0]!), req('r2', tokens[0]!, S1.toUpperCase())]), 100);
    const row = db.prepare('SELECT * FROM unknown_tokens').get() as Record<string, unknown>;
    assert.deepEqual(
      { mask: row.token_mask, hash: row.token_hash, station: row.station_id, n: row.seen_count, last: row.last_request_id },
      { mask: 'unkn…cdef', hash: hashToken(tokens[0]!), station: S1, n: 2, last: 'r2' },
    );
    store.record([refused('r3')], new Map([req('r3', tokens[1]!)]), 200);
    store.record([refused('r4')], new Map([req('r4', tokens[2]!)]), 300);
    const hashes = db.prepare('SELECT token_hash FROM unknown_tokens ORDER BY last_seen_at').pluck().all();
    assert.deepEqual(hashes, [hashToken(tokens[1]!), hashToken(tokens[2]!)], 'the oldest sighting went');
    const text = JSON.stringify(db.prepare('SELECT * FROM unknown_tokens').all());
    for (const tk of tokens) assert.ok(!text.includes(tk), 'no full token stored');
  });
});
