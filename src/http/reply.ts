import type { ResponseToolkit } from '@hapi/hapi';
import { ERRORS, type ErrorCode } from '../core/errors.ts';
import type { FieldError } from './schema.ts';

// The one place that turns error codes into HTTP answers (SPEC §1 error shape).

export interface ErrorBody {
  status: string;
  message: string;
  errors: FieldError[];
}

export function errorBody(code: ErrorCode, message: string, errors: FieldError[] = []): ErrorBody {
  return { status: ERRORS[code].apiStatus, message, errors };
}

export function errorReply(h: ResponseToolkit, code: ErrorCode, message: string, errors: FieldError[] = [], retryAfterS?: number) {
  const res = h.response(errorBody(code, message, errors)).code(ERRORS[code].status);
  if (retryAfterS !== undefined) res.header('retry-after', String(retryAfterS));
  return res;
}

/** Hapi's own (Boom) errors (payload parsing, unknown routes) mapped onto the table. */
export function codeForStatus(status: number): ErrorCode {
  if (status === 413) return 'CG_ERR_PAYLOAD_TOO_LARGE';
  if (status === 415) return 'CG_ERR_UNSUPPORTED_MEDIA';
  if (status === 404) return 'CG_ERR_NOT_FOUND';
  if (status === 401) return 'CG_ERR_UNAUTHORIZED';
  if (status === 405) return 'CG_ERR_METHOD_NOT_ALLOWED';
  if (status === 503) return 'CG_ERR_DB_UNAVAILABLE';
  if (status >= 400 && status < 500) return 'CG_ERR_INVALID_REQUEST';
  return 'CG_ERR_INTERNAL';
}
