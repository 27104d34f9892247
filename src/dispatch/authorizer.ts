import { proxySettings, type Config } from '../config.ts';
import { createBreakerState } from '../core/breaker.ts';
import type { AuthorizerSettings, DecideTask } from '../core/types.ts';

// The upstream authorizer's part of the decide/authorize tasks, built once from Config:
// plain data plus the breaker's shared memory, which every task carries so that all
// worker threads use one breaker.

export interface AuthorizerPlan {
  /** DecideTask.authorizer: tells the local step to refer what it cannot decide. */
  decide: NonNullable<DecideTask['authorizer']>;
  settings: AuthorizerSettings;
}

/** null when AUTHORIZER_URL is unset: the local list decides everything. */
export function authorizerPlan(config: Readonly<Config>): AuthorizerPlan | null {
  if (config.authorizerUrl === null) return null;
  return {
    decide: { offlineCacheMaxAgeMs: config.offlineCacheMaxAgeS * 1000 },
    settings: {
      url: config.authorizerUrl,
      protocol: config.authorizerProtocol,
      token: config.authorizerToken,
      // Split across threads (state is per thread): the total stays within the setting.
      maxConcurrent: Math.max(1, Math.floor(config.authorizerMaxConcurrency / config.workers)),
      breakerFailures: config.authorizerBreakerFailures,
      breakerOpenMs: config.authorizerBreakerOpenMs,
      breakerState: createBreakerState(),
      cacheTtlMs: config.authorizerCacheTtlS * 1000,
      cacheNegativeTtlMs: config.authorizerCacheNegativeTtlS * 1000,
      offlineAllowUnknown: config.offlineAllowUnknown,
      proxy: proxySettings(config),
    },
  };
}

/**
 * How far ahead of the decision deadline the upstream step must stop (10 %, at least
 * 20 ms, at most 1 s): the worker's own deadline then fires first and the offline rules
 * still decide, with a real source and reason, before the decision would be lost.
 */
export function upstreamMarginMs(timeoutMs: number): number {
  return Math.min(1000, Math.max(20, Math.round(timeoutMs * 0.1)));
}
