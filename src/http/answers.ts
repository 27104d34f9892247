import Joi from 'joi';
import { ERRORS } from '../core/errors.ts';
import { TOKEN_TYPES } from '../core/validate.ts';

// The shapes of the API's answers and of the callback, as joi schemas. The routes name
// them in their OpenAPI notes (src/http/openapi.ts turns them into JSON Schema, and loads
// this file with it: nothing here is needed to serve a request); the tests
// check every answer the server really sends against the published document, so a
// change to an answer that is not made here fails there.

const STATES = ['queued', 'authorizing', 'delivering', 'delivered', 'failed'];
const DECISIONS = ['allowed', 'not_allowed', 'unknown', 'invalid'];
const LEVELS = ['UP', 'DEGRADED', 'DOWN'];
const iso = () => Joi.string().isoDate();

export const fieldErrorAnswer = Joi.object({
  field: Joi.string().required().description('the body field (or `body`, `url`, `Idempotency-Key`, `request_id`) at fault'),
  message: Joi.string().required(),
}).label('FieldError');

/** Every error answer: `invalid` (4xx on input), `not_found`, `rejected` (503, retry later), `error`. */
export const errorAnswer = Joi.object({
  status: Joi.string().valid(...new Set(Object.values(ERRORS).map((e) => e.apiStatus))).required(),
  message: Joi.string().required().description('short, for people; never a stack trace'),
  errors: Joi.array().items(fieldErrorAnswer).required().description('every bad field; empty when no field is at fault'),
}).label('Error');

export const acceptedAnswer = Joi.object({
  status: Joi.string().valid('accepted').required(),
  message: Joi.string().required(),
  request_id: Joi.string().uuid().required().description('also in the Location header'),
}).label('Accepted');

const decision = Joi.object({
  status: Joi.string().valid(...DECISIONS).required(),
  reason: Joi.string().allow(null).required(),
  source: Joi.string().allow(null).required().description('local_list, cache, upstream, offline_rule or system'),
  latency_ms: Joi.number().integer().allow(null).required(),
  decided_at: iso().allow(null).required(),
}).allow(null).description('null until decided');

const attempt = Joi.object({
  attempt: Joi.number().integer().min(1).required(),
  at: iso().required(),
  duration_ms: Joi.number().integer().required(),
  http_status: Joi.number().integer().allow(null).required().description("the receiver's status; null when it did not answer"),
  error: Joi.string().allow(null).required().description('network error code, `timeout` or `refused_by_policy`; null when it answered'),
  outcome: Joi.string().valid('delivered', 'retry', 'failed').required(),
}).label('Attempt');

export const requestAnswer = Joi.object({
  request_id: Joi.string().uuid().required(),
  state: Joi.string().valid(...STATES).required(),
  station_id: Joi.string().required(),
  driver_token: Joi.string().required().description('masked (first and last four characters)'),
  token_type: Joi.string().valid(...TOKEN_TYPES).required(),
  callback_url: Joi.string().required(),
  client: Joi.string().allow(null).required().description('the API key name the request came with; null when none was required'),
  decision,
  delivery: Joi.object({
    attempts: Joi.number().integer().required(),
    last_error: Joi.string().allow(null).required(),
    next_attempt_at: iso().allow(null).required(),
    finished_at: iso().allow(null).required(),
  }).required(),
  attempts: Joi.array().items(attempt).required(),
  created_at: iso().required(),
  updated_at: iso().required(),
}).label('ChargingRequest');

const component = Joi.object({ status: Joi.string().valid(...LEVELS).required() }).unknown(true);

export const healthAnswer = Joi.object({
  status: Joi.string().valid(...LEVELS).required(),
  components: Joi.object({
    database: component.required(),
    queue: component.required(),
    workers: component.required(),
    callbacks: component.required(),
    authorizer: component.description('only with AUTHORIZER_URL'),
  }).required(),
}).label('Health');

export const probeAnswer = Joi.object({ status: Joi.string().valid('UP', 'DOWN').required() }).label('Probe');

/** The callback's body (SPEC §2): exactly these three members. */
export const callbackBody = Joi.object({
  station_id: Joi.string().required().description('as the client sent it'),
  driver_token: Joi.string().required().description('in full, as the client sent it'),
  status: Joi.string().valid(...DECISIONS).required(),
}).label('CallbackBody');
