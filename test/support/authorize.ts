import { clockMs } from '../../src/core/gate.ts';
import { createBreakerState } from '../../src/core/breaker.ts';
import { hashToken } from '../../src/core/token.ts';
import type { AuthorizeItem, AuthorizerSettings, AuthorizeTask, Decision, Referral } from '../../src/core/types.ts';
import { authorize as authorizeTask } from '../../workers/authorize.ts';

// Builders for `authorize` tasks as the dispatcher sends them, for tests that call the
// worker function directly (in this thread) against a real fake authority.

export const STATION = '123e4567-e89b-12d3-a456-426614174000';

/** Settings with a breaker that will not open unless a test asks for it. */
export function settings(url: string, over: Partial<AuthorizerSettings> = {}): AuthorizerSettings {
  return {
    url,
    protocol: 'json',
    token: null,
    maxConcurrent: 16,
    breakerFailures: 1_000_000,
    breakerOpenMs: 30_000,
    breakerState: createBreakerState(),
    cacheTtlMs: 300_000,
    cacheNegativeTtlMs: 60_000,
    offlineAllowUnknown: false,
    ...over,
  };
}

let n = 0;
export function item(token: string, over: Partial<Referral> = {}, station = STATION): AuthorizeItem {
  return {
    id: `req-${++n}`,
    station_id: station,
    driver_token: token,
    token_type: 'RFID',
    referral: { token_hash: hashToken(token), station: station.toLowerCase(), offline: 'none', listed: false, ...over },
  };
}

export function task(s: AuthorizerSettings, items: AuthorizeItem[], opts: { now?: number; budgetMs?: number } = {}): AuthorizeTask {
  // Generous by default: only tests about deadlines set a short one.
  const sentAt = clockMs();
  return { authorizer: s, now: opts.now ?? Date.now(), sentAt, upstreamBy: sentAt + (opts.budgetMs ?? 10_000), items };
}

/** The worker's authorize task, run ungated (it answers null only when its gate was cancelled). */
export async function authorize(t: AuthorizeTask): Promise<Decision[]> {
  const out = await authorizeTask(t);
  if (out === null) throw new Error('authorize task was cancelled');
  return out;
}
