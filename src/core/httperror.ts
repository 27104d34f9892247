// What an outbound HTTP call's failure was, for every caller (callbacks, the upstream
// authorizer): one place decides which failures are timeouts, so /metrics, retries and
// decision reasons agree. undici's own deadlines (connect, headers, body), the call's
// AbortSignal.timeout and the OS's connect timeout are all one class, `timeout`: with
// equal deadlines they race, and which one fires first says nothing about the receiver.

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

interface ErrorLike {
  name?: string;
  code?: string;
  cause?: { name?: string; code?: string };
}

/** The error's code: its own, its cause's, else its name; `timeout` for an aborted deadline. */
export function errorCode(err: unknown): string {
  const e = err as ErrorLike | null | undefined;
  // AbortSignal.timeout rejects with a TimeoutError DOMException; undici may report the
  // abort as its own RequestAbortedError (AbortError). The only signal we pass is a deadline.
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timeout';
  return e?.code ?? e?.cause?.code ?? e?.name ?? 'error';
}

/** True for every kind of deadline: the call's own, undici's, the OS's. */
export function isTimeout(err: unknown): boolean {
  const e = err as ErrorLike | null | undefined;
  if (errorCode(err) === 'timeout' || e?.cause?.name === 'TimeoutError') return true;
  return TIMEOUT_CODES.has(e?.code ?? '') || TIMEOUT_CODES.has(e?.cause?.code ?? '');
}
