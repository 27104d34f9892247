import { breaker, type Breaker } from '../src/core/breaker.ts';
import { clockMs, enter } from '../src/core/gate.ts';
import type { AuthorizeItem, AuthorizeTask, AuthorizerSettings, Decision } from '../src/core/types.ts';
import { failed, type Lookup } from './authorize/answer.ts';
import { createCoalescer } from './authorize/coalesce.ts';
import { post } from './authorize/http.ts';
import { jsonAnswer, jsonRequest } from './authorize/json.ts';
import { createLimiter } from './authorize/limit.ts';
import { ocpiAnswer, ocpiRequest } from './authorize/ocpi.ts';
import { offlineDecision } from './authorize/offline.ts';

// The second step of the authorization chain, for what the local list and the cache could
// not decide (workers/decide.ts referred it): ask the upstream authorizer, protected by a
// per-thread concurrency bound, per-thread coalescing of identical lookups and the
// process-wide circuit breaker; when it cannot answer, the offline rules decide.
// Nothing here touches the database: answers to keep travel back as `cache_put`.

const limiter = createLimiter(1);
const coalescer = createCoalescer<Lookup>();

async function lookup(s: AuthorizerSettings, br: Breaker, item: AuthorizeItem, clock: () => number, left: () => number): Promise<Lookup> {
  // No time left (the task started late): the offline rules decide; not the upstream's fault.
  if (left() <= 0) return failed('timeout', 'no time left before the decision deadline');
  const admission = br.admit(clock(), Math.max(1, left()));
  if (admission === 'refused') return failed('circuit_open', '');
  // Waiting for a slot past the deadline is this gateway's overload, not the upstream's
  // failure: it does not count against the breaker.
  const release = await limiter.acquire(left());
  if (!release) return failed('timeout', 'no free upstream slot before the deadline');
  let result: Lookup;
  try {
    const { station } = item.referral;
    const call =
      s.protocol === 'ocpi'
        ? ocpiRequest(s.url, s.token, station, item.driver_token, item.token_type)
        : jsonRequest(s.url, s.token, station, item.driver_token);
    const res = await post(call, left(), s.proxy ?? null);
    result = 'kind' in res ? res : s.protocol === 'ocpi' ? ocpiAnswer(res) : jsonAnswer(res);
  } catch (err) {
    result = failed('upstream_error', String(err));
  } finally {
    release();
  }
  if (result.kind === 'answer') br.success();
  else br.failure(clock(), admission === 'probe');
  return result;
}

export async function authorize(task: AuthorizeTask): Promise<Decision[] | null> {
  if (!enter(task.gate)) return null;
  const t0 = performance.now();
  const s = task.authorizer;
  // The main thread's clock (injectable in tests) moved on by the time since the task was
  // sent, queueing included, so the breaker's timing is not stale.
  const clock = () => task.now + (clockMs() - task.sentAt);
  // Past upstreamBy (also when the task started late) lookups go straight to the offline rules.
  const left = () => task.upstreamBy - clockMs();
  limiter.resize(s.maxConcurrent);
  const br = breaker(s.breakerState, { failures: s.breakerFailures, openMs: s.breakerOpenMs });

  return Promise.all(
    task.items.map(async (item): Promise<Decision> => {
      const { token_hash, station, listed } = item.referral;
      const r = await coalescer.run(`${token_hash}|${item.token_type}|${station}`, () => lookup(s, br, item, clock, left));
      const latency_ms = Math.round(performance.now() - t0);
      if (r.kind === 'failed') return { id: item.id, ...offlineDecision(item, r.reason, r.detail, s.offlineAllowUnknown), latency_ms };
      const d: Decision = { id: item.id, status: r.status, reason: r.reason, source: 'upstream', latency_ms };
      if (r.reason === 'unknown_token' && !listed) d.unknown_token = true;
      if (r.cacheable) {
        // A TTL of 0 keeps the answer stale from the start: never used alone, but an
        // allowed one still counts for the offline rules.
        const ttl = r.cacheForMs ?? (r.status === 'allowed' ? s.cacheTtlMs : s.cacheNegativeTtlMs);
        const at = Math.round(clock());
        d.cache_put = { token_hash, token_type: item.token_type, station_id: station, status: r.status, reason: r.reason, stored_at: at, fresh_until: at + ttl };
      }
      return d;
    }),
  );
}
