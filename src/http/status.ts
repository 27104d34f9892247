import type { ServerRoute } from '@hapi/hapi';
import type { RequestView } from '../core/types.ts';
import { UUID_RE } from '../core/validate.ts';
import { errorDoc, unauthorizedDoc } from './routedoc.ts';
import { AUTH_STRATEGY, type Credentials } from './auth.ts';
import { errorReply } from './reply.ts';

export interface RequestLookup {
  get(id: string): RequestView | null | Promise<RequestView | null>;
}

export function statusRoutes(reads: RequestLookup): ServerRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/v1/charging-session/{request_id}',
      options: {
        auth: AUTH_STRATEGY,
        plugins: {
          openapi: {
            operationId: 'getChargingSession',
            summary: "A request's state, decision and delivery attempts",
            description: 'The driver token is masked. Also printed by `chargegate requests show <id> --json`.',
            tags: ['sessions'],
            params: { request_id: { description: 'from the 202 answer or its Location header', schema: { type: 'string', format: 'uuid' } } },
            answers: {
              200: { description: 'the request', schema: 'requestAnswer', headers: { 'Cache-Control': { description: '`no-store`', required: true } } },
              400: errorDoc('request_id is not a UUID'),
              401: unauthorizedDoc(),
              404: errorDoc('no such request, or (with API keys) another client\'s (status `not_found`)'),
            },
          },
        },
      },
      handler: async (request, h) => {
        const id = String(request.params.request_id);
        if (!UUID_RE.test(id)) {
          return errorReply(h, 'CG_ERR_INVALID_REQUEST', 'the request id is invalid', [{ field: 'request_id', message: 'must be a UUID' }]);
        }
        const view = await reads.get(id.toLowerCase());
        // With keys, a client reads only its own requests; another's is as good as absent.
        const { client } = request.auth.credentials as unknown as Credentials;
        if (!view || (client !== null && view.client !== client)) return errorReply(h, 'CG_ERR_NOT_FOUND', `no request ${id}`);
        return h.response(view).header('cache-control', 'no-store');
      },
    },
  ];
}
