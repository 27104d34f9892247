// One table of error codes: HTTP mapping and retryability live here and nowhere else.
// Across the thread boundary errors travel as plain data ({ code, message, retryable }).

export const ERRORS = {
  CG_ERR_INVALID_REQUEST: { status: 400, apiStatus: 'invalid', retryable: false },
  CG_ERR_UNSUPPORTED_MEDIA: { status: 415, apiStatus: 'invalid', retryable: false },
  CG_ERR_PAYLOAD_TOO_LARGE: { status: 413, apiStatus: 'invalid', retryable: false },
  CG_ERR_IDEMPOTENCY_MISMATCH: { status: 422, apiStatus: 'invalid', retryable: false },
  CG_ERR_NOT_FOUND: { status: 404, apiStatus: 'not_found', retryable: false },
  CG_ERR_UNAUTHORIZED: { status: 401, apiStatus: 'unauthorized', retryable: false },
  CG_ERR_METHOD_NOT_ALLOWED: { status: 405, apiStatus: 'invalid', retryable: false },
  CG_ERR_QUEUE_FULL: { status: 503, apiStatus: 'rejected', retryable: true },
  CG_ERR_DB_UNAVAILABLE: { status: 503, apiStatus: 'rejected', retryable: true },
  CG_ERR_SHUTTING_DOWN: { status: 503, apiStatus: 'rejected', retryable: true },
  CG_ERR_INTERNAL: { status: 500, apiStatus: 'error', retryable: true },
  CG_ERR_SCHEMA_NEWER: { status: 500, apiStatus: 'error', retryable: false },
  CG_ERR_CONFIG: { status: 500, apiStatus: 'error', retryable: false },
  CG_ERR_USAGE: { status: 400, apiStatus: 'invalid', retryable: false },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** An error that carries a code from the table; `details` is safe to show to clients. */
export class ChargegateError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'ChargegateError';
    this.code = code;
    this.details = details;
  }
}

export function isChargegateError(err: unknown): err is ChargegateError {
  return err instanceof ChargegateError;
}
