import type { ServerRoute } from '@hapi/hapi';
import type Joi from 'joi';
import { ERRORS, isChargegateError } from '../core/errors.ts';
import type { Intake } from '../intake.ts';
import { errorReply } from './reply.ts';
import { fieldErrors, sessionSchema, type SessionBody } from './schema.ts';

export const ACCEPTED_MESSAGE = 'Request is being processed asynchronously. The result will be sent to the provided callback URL.';

/** Upper bound of a request body (SPEC §1): larger bodies get 413 before they are parsed. */
export const MAX_BODY_BYTES = 16 * 1024;

export function sessionRoutes(intake: Intake): ServerRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/v1/charging-session',
      options: {
        payload: {
          maxBytes: MAX_BODY_BYTES,
          allow: ['application/json'],
          // Hapi reads a body without Content-Type as JSON; the contract wants a 415 for it.
          defaultContentType: 'application/octet-stream',
          parse: true,
          output: 'data',
        },
        validate: {
          payload: sessionSchema,
          failAction: (_request, h, err) =>
            errorReply(h, 'CG_ERR_INVALID_REQUEST', 'the request is invalid', fieldErrors(err as Joi.ValidationError)).takeover(),
        },
      },
      handler: async (request, h) => {
        try {
          const id = await intake.accept(request.payload as SessionBody);
          return h
            .response({ status: 'accepted', message: ACCEPTED_MESSAGE, request_id: id })
            .code(202)
            .header('location', `/api/v1/charging-session/${id}`);
        } catch (err) {
          if (isChargegateError(err) && ERRORS[err.code].status === 503) {
            return errorReply(h, err.code, err.message, [], err.code === 'CG_ERR_QUEUE_FULL' ? 1 : 5);
          }
          throw err;
        }
      },
    },
  ];
}
