import type { ServerRoute } from '@hapi/hapi';
import type Joi from 'joi';
import { ERRORS, isChargegateError } from '../core/errors.ts';
import type { Intake } from '../queue/intake.ts';
import { AUTH_STRATEGY, type Credentials } from './auth.ts';
import { errorReply } from './reply.ts';
import type { UrlPolicy } from '../core/urlpolicy.ts';
import { parseBody } from './body.ts';
import { errorDoc, unauthorizedDoc, type RouteDoc } from './routedoc.ts';
import type { FieldError, SessionBody } from './schema.ts';

export const ACCEPTED_MESSAGE = 'Request is being processed asynchronously. The result will be sent to the provided callback URL.';

/** Upper bound of a request body (SPEC §1): larger bodies get 413 before they are parsed. */
export const MAX_BODY_BYTES = 16 * 1024;

/** SPEC §1: 1-255 printable ASCII characters. */
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

/** A body that is not I-JSON (src/http/body.ts); reported as field `body`. */
class BodyError extends Error {
  override readonly name = 'BodyError';
}

function idempotencyKey(headers: Record<string, unknown>): { value: string | null; error?: FieldError } {
  const raw = headers['idempotency-key'];
  if (raw === undefined) return { value: null };
  if (typeof raw !== 'string' || !IDEMPOTENCY_KEY.test(raw)) {
    return { value: null, error: { field: 'Idempotency-Key', message: 'must be 1 to 255 printable ASCII characters' } };
  }
  return { value: raw };
}

const RETRY_AFTER = { 'Retry-After': { description: 'seconds to wait before retrying', required: true, schema: { type: 'string', pattern: '^[0-9]+$' } } };

/** The body schema under the service's callback URL policy, and joi's error mapping. */
export interface SessionSchema {
  schema: Joi.ObjectSchema<SessionBody>;
  fieldErrors: (err: Joi.ValidationError) => FieldError[];
}

/**
 * Loads joi and builds the body schema on first call, not with every start (~15 ms of CPU,
 * docs/performance.md); src/http/server.ts calls it right after the listener opens, so a
 * first POST seldom waits for it. Every call gets the one schema.
 */
export function sessionSchemaLoader(policy: UrlPolicy): () => Promise<SessionSchema> {
  let loaded: Promise<SessionSchema> | undefined;
  return () => (loaded ??= import('./schema.ts').then((m) => ({ schema: m.createSessionSchema(policy), fieldErrors: m.fieldErrors })));
}

function sessionDoc(schema: () => Promise<Joi.Schema>): RouteDoc {
  return {
    operationId: 'startChargingSession',
    summary: 'Ask for a charging-session start to be authorized',
    description:
      'Answers at once; the decision is POSTed to `callback_url` later (the `chargingSessionResult` webhook). ' +
      'The 202 is sent only after the request is committed to disk.',
    tags: ['sessions'],
    body: { schema, name: 'ChargingSessionRequest', description: 'at most 16 KiB; I-JSON (valid UTF-8, no duplicate members); gzip or deflate Content-Encoding accepted' },
    headers: {
      'Idempotency-Key': {
        description: 'a repeat with the same key and body (within 24 h) gets the first answer and enqueues nothing; the same key with another body is 422',
        schema: { type: 'string', pattern: '^[\\x20-\\x7e]{1,255}$' },
      },
    },
    answers: {
      202: {
        description: 'accepted and stored durably',
        schema: 'acceptedAnswer',
        headers: {
          Location: { description: '/api/v1/charging-session/{request_id}', required: true },
          'Idempotent-Replayed': { description: '`true` when this is the first answer to an earlier request with the same Idempotency-Key' },
        },
      },
      400: errorDoc('a field missing, wrong or unknown (every bad field listed), or the body is not a JSON object'),
      401: unauthorizedDoc(),
      408: errorDoc('the request did not arrive in time'),
      413: errorDoc('the body is larger than 16 KiB'),
      415: errorDoc('Content-Type is not application/json'),
      422: errorDoc('the Idempotency-Key was used with a different body'),
      431: errorDoc('the request headers are too large'),
      500: errorDoc('an unexpected error (status `error`); nothing was accepted'),
      503: errorDoc('the queue is at its bound, the database is unavailable or the service is stopping (status `rejected`)', RETRY_AFTER),
    },
  };
}

export function sessionRoutes(intake: Intake, load: () => Promise<SessionSchema>): ServerRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/v1/charging-session',
      options: {
        plugins: { openapi: sessionDoc(async () => (await load()).schema) },
        auth: AUTH_STRATEGY,
        payload: {
          maxBytes: MAX_BODY_BYTES,
          allow: ['application/json'],
          // Hapi reads a body without Content-Type as JSON; the contract wants a 415 for it.
          defaultContentType: 'application/octet-stream',
          // The raw bytes (gzip/deflate undone, size capped): parseBody refuses what
          // JSON.parse would silently repair (invalid UTF-8, duplicate members).
          parse: 'gunzip',
          output: 'data',
        },
        validate: {
          payload: async (raw: unknown) => {
            const parsed = parseBody(raw as Buffer | null);
            if (!parsed.ok) throw new BodyError(parsed.message);
            const { schema } = await load();
            const { value, error } = schema.validate(parsed.value);
            if (error) throw error;
            return value;
          },
          failAction: async (request, h, err) => {
            if (err instanceof BodyError) {
              return errorReply(h, 'CG_ERR_INVALID_REQUEST', err.message, [{ field: 'body', message: err.message }]).takeover();
            }
            const errors = (await load()).fieldErrors(err as Joi.ValidationError);
            const keyError = idempotencyKey(request.headers).error;
            if (keyError) errors.push(keyError);
            return errorReply(h, 'CG_ERR_INVALID_REQUEST', 'the request is invalid', errors).takeover();
          },
        },
      },
      handler: async (request, h) => {
        const key = idempotencyKey(request.headers);
        if (key.error) return errorReply(h, 'CG_ERR_INVALID_REQUEST', 'the request is invalid', [key.error]);
        try {
          const { client } = request.auth.credentials as unknown as Credentials;
          const { request_id: id, replayed } = await intake.accept(request.payload as SessionBody, key.value, client);
          const res = h
            .response({ status: 'accepted', message: ACCEPTED_MESSAGE, request_id: id })
            .code(202)
            .header('location', `/api/v1/charging-session/${id}`);
          if (replayed) res.header('idempotent-replayed', 'true');
          return res;
        } catch (err) {
          if (isChargegateError(err) && ERRORS[err.code].status === 503) {
            return errorReply(h, err.code, err.message, [], err.code === 'CG_ERR_QUEUE_FULL' ? 1 : 5);
          }
          if (isChargegateError(err) && err.code === 'CG_ERR_IDEMPOTENCY_MISMATCH') {
            return errorReply(h, err.code, err.message, [{ field: 'Idempotency-Key', message: 'already used with a different body' }]);
          }
          throw err;
        }
      },
    },
  ];
}
