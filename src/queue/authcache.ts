import { hashToken, maskToken } from '../core/token.ts';
import type { Decision } from '../core/types.ts';
import type { Db } from './db.ts';

// What the authorization chain leaves behind, written by the main thread (the one writer)
// inside the same group commit as the decisions: upstream answers for authorizer_cache,
// the recency of cache entries used, and unknown-token sightings. Workers read the cache
// through their read-only connections. No method opens a transaction (see committer.ts).

/** unknown_tokens keeps the most recently seen tokens up to this many rows. */
export const UNKNOWN_TOKENS_MAX = 10_000;

export interface AuthStoreOptions {
  /** AUTHORIZER_CACHE_MAX_ENTRIES */
  maxEntries: number;
  maxUnknown?: number;
}

/** The request a decision was made for: its token and station (the decision has neither). */
export interface Decided {
  id: string;
  station_id: string;
  driver_token: string | null;
}

export function createAuthStore(db: Db, opts: AuthStoreOptions) {
  const maxUnknown = opts.maxUnknown ?? UNKNOWN_TOKENS_MAX;
  const exists = db.prepare('SELECT 1 FROM authorizer_cache WHERE token_hash = ? AND token_type = ? AND station_id = ?').pluck();
  const put = db.prepare(`INSERT INTO authorizer_cache
      (token_hash, token_type, station_id, status, reason, stored_at, fresh_until, last_used_at)
    VALUES (@token_hash, @token_type, @station_id, @status, @reason, @stored_at, @fresh_until, @now)
    ON CONFLICT (token_hash, token_type, station_id) DO UPDATE SET status = excluded.status, reason = excluded.reason,
      stored_at = excluded.stored_at, fresh_until = excluded.fresh_until, last_used_at = excluded.last_used_at`);
  const touch = db.prepare(
    'UPDATE authorizer_cache SET last_used_at = @now WHERE token_hash = @token_hash AND token_type = @token_type AND station_id = @station_id',
  );
  const countCache = db.prepare('SELECT COUNT(*) FROM authorizer_cache').pluck();
  const trimCache = db.prepare('DELETE FROM authorizer_cache WHERE rowid IN (SELECT rowid FROM authorizer_cache ORDER BY last_used_at LIMIT ?)');
  const seen = db.prepare(`INSERT INTO unknown_tokens
      (token_hash, station_id, token_mask, seen_count, first_seen_at, last_seen_at, last_status, last_reason, last_request_id)
    VALUES (@token_hash, @station_id, @token_mask, 1, @now, @now, @status, @reason, @request_id)
    ON CONFLICT (token_hash, station_id) DO UPDATE SET seen_count = seen_count + 1, last_seen_at = excluded.last_seen_at,
      last_status = excluded.last_status, last_reason = excluded.last_reason, last_request_id = excluded.last_request_id`);
  const countUnknown = db.prepare('SELECT COUNT(*) FROM unknown_tokens').pluck();
  const trimUnknown = db.prepare('DELETE FROM unknown_tokens WHERE rowid IN (SELECT rowid FROM unknown_tokens ORDER BY last_seen_at LIMIT ?)');

  // Row counts kept in memory so the bound costs nothing until it is reached; re-read
  // whenever it looks exceeded, since admins may delete rows with sqlite3 meanwhile.
  let cacheRows = countCache.get() as number;
  let unknownRows = countUnknown.get() as number;

  function bound(estimate: number, max: number, count: () => number, trim: (n: number) => number): number {
    if (estimate <= max) return estimate;
    const real = count();
    return real > max ? real - trim(real - max) : real;
  }

  return {
    /**
     * Persists what the decisions carry; `requests` gives each decision's token and station
     * (looked up by id). Returns the number of rows written, for tests.
     */
    record(decisions: Decision[], requests: Map<string, Decided>, now: number): number {
      let writes = 0;
      for (const d of decisions) {
        if (d.cache_put) {
          if (!exists.get(d.cache_put.token_hash, d.cache_put.token_type, d.cache_put.station_id)) cacheRows++;
          put.run({ ...d.cache_put, now });
          writes++;
        } else if (d.cache_used) {
          writes += touch.run({ ...d.cache_used, now }).changes;
        }
        const req = requests.get(d.id);
        if (d.unknown_token && req?.driver_token) {
          seen.run({
            token_hash: hashToken(req.driver_token),
            station_id: req.station_id.toLowerCase(),
            token_mask: maskToken(req.driver_token),
            now,
            status: d.status,
            reason: d.reason,
            request_id: d.id,
          });
          // Counted per sighting, not per new row: an overestimate that bound() corrects.
          unknownRows++;
          writes++;
        }
      }
      cacheRows = bound(cacheRows, opts.maxEntries, () => countCache.get() as number, (n) => trimCache.run(n).changes);
      unknownRows = bound(unknownRows, maxUnknown, () => countUnknown.get() as number, (n) => trimUnknown.run(n).changes);
      return writes;
    },
    get cacheRows(): number {
      return cacheRows;
    },
  };
}

export type AuthStore = ReturnType<typeof createAuthStore>;
