import type { AuthorizeItem, Decision } from '../../src/core/types.ts';
import type { FailureReason } from './answer.ts';

// The offline rules (README "Authorization chain", step 4): what decides when the upstream
// cannot answer. Allowed only on the operator's say-so (allow_offline, OFFLINE_ALLOW_UNKNOWN)
// or the upstream's own recent allowed; otherwise unknown, with why the upstream failed.

type Step = Omit<Decision, 'id' | 'latency_ms'>;

export function offlineDecision(item: AuthorizeItem, why: FailureReason, detail: string, allowUnknown: boolean): Step {
  const { offline, listed } = item.referral;
  const base = { source: 'offline_rule' as const, upstream_error: detail ? `${why}: ${detail}` : why };
  if (offline === 'allow_offline') return { ...base, status: 'allowed', reason: 'allow_offline' };
  if (offline === 'cached_allowed') return { ...base, status: 'allowed', reason: 'cached_allowed' };
  if (offline === 'unknown_token' && allowUnknown) return { ...base, status: 'allowed', reason: 'allow_unknown', unknown_token: true };
  return { ...base, status: 'unknown', reason: why, ...(listed ? {} : { unknown_token: true }) };
}
