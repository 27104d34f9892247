import type { Server } from '@hapi/hapi';
import Boom from '@hapi/boom';

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

/** The token of an `Authorization: Bearer <token>` header, or null (API keys, the scrape token). */
export function bearerToken(header: unknown): string | null {
  return BEARER.exec(String(header ?? ''))?.[1] ?? null;
}

/** What the door needs of the key store (src/queue/keys.ts createKeyring). */
export interface KeyCheck {
  /** Keys are asked for (one exists, or API_KEYS_REQUIRED). */
  required(): boolean;
  /** The client a presented key belongs to, or null; asked right after required(), which refreshed the keys. */
  verify(key: string): string | null;
}

export function registerAuth(server: Server, keyring: KeyCheck): void {
  server.auth.scheme(AUTH_STRATEGY, () => ({
    authenticate(request, h) {
      if (!keyring.required()) return h.authenticated({ credentials: { client: null } satisfies Credentials });
      const key = bearerToken(request.headers.authorization);
      const client = key === null ? null : keyring.verify(key);
      // No message: Boom would put it into WWW-Authenticate as error="…" (RFC 6750 wants a
      // code there); the body's message comes from the one error mapping (server.ts).
      if (client === null) throw Boom.unauthorized(null, 'Bearer', { realm: REALM });
      return h.authenticated({ credentials: { client } satisfies Credentials });
    },
  }));
  server.auth.strategy(AUTH_STRATEGY, AUTH_STRATEGY);
}
