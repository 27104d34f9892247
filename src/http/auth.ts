import type { Server } from '@hapi/hapi';
import Boom from '@hapi/boom';
import type { Keyring } from '../queue/keys.ts';

// API keys at the door (SPEC "Who may call"), as a Hapi auth scheme so it runs before the
// body is read: while keys are required, the POST and the status read need
// `Authorization: Bearer <key>`. A missing, unknown, revoked or expired key gets the same
// 401 with the same message: nothing tells a caller whether a name or key exists.

export const AUTH_STRATEGY = 'api-key';
const REALM = 'chargegate';

/** What a route sees in request.auth.credentials: the client's name, null when keys are off. */
export interface Credentials {
  client: string | null;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

export function registerAuth(server: Server, keyring: Keyring): void {
  server.auth.scheme(AUTH_STRATEGY, () => ({
    authenticate(request, h) {
      if (!keyring.required()) return h.authenticated({ credentials: { client: null } satisfies Credentials });
      const m = BEARER.exec(String(request.headers.authorization ?? ''));
      const client = m ? keyring.verify(m[1]!) : null;
      // No message: Boom would put it into WWW-Authenticate as error="…" (RFC 6750 wants a
      // code there); the body's message comes from the one error mapping (server.ts).
      if (client === null) throw Boom.unauthorized(null, 'Bearer', { realm: REALM });
      return h.authenticated({ credentials: { client } satisfies Credentials });
    },
  }));
  server.auth.strategy(AUTH_STRATEGY, AUTH_STRATEGY);
}
