// What one upstream lookup comes to, whatever the protocol: an answer about the token, or
// a failure that leaves the decision to the offline rules.

/** Why the upstream could not answer; also the reason of an `unknown` decision. */
export type FailureReason = 'timeout' | 'upstream_unreachable' | 'upstream_error' | 'upstream_bad_answer' | 'circuit_open';

export type Lookup =
  | {
      kind: 'answer';
      status: 'allowed' | 'not_allowed';
      reason: string;
      /** Freshness the upstream asked for (ms), else null for the configured default. */
      cacheForMs: number | null;
      /** false when the upstream forbids keeping the answer (OCPI whitelist NEVER). */
      cacheable: boolean;
    }
  | {
      kind: 'failed';
      reason: FailureReason;
      /** For the log line: HTTP status, error code, what was wrong with the body. */
      detail: string;
    };

/** A response as the protocol mappings see it. */
export interface HttpAnswer {
  status: number;
  /** The body as text, or null when it was larger than the read limit. */
  text: string | null;
}

export const failed = (reason: FailureReason, detail: string): Lookup => ({ kind: 'failed', reason, detail });

/**
 * An upstream's own reason goes into the database and the logs: kept only when it is a
 * short plain word, otherwise replaced by the status.
 */
export function cleanReason(value: unknown, fallback: string): string {
  return typeof value === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(value) ? value : fallback;
}

export function parseObject(text: string | null): Record<string, unknown> | null {
  if (text === null) return null;
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
