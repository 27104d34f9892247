import Joi from 'joi';
import type { SessionBody as Body } from '../core/types.ts';
import { checkHost, compilePolicy, type UrlPolicy } from '../core/urlpolicy.ts';
import { DEFAULT_TOKEN_TYPE, TOKEN_RE as TOKEN, TOKEN_TYPES, URL_FORBIDDEN_CHAR_RE, UUID_RE as UUID } from '../core/validate.ts';

// The accept contract of SPEC §1, one rule per field. Messages name the rule in words a
// client developer can act on; every bad field is reported (abortEarly: false).

export const FIELDS = ['station_id', 'driver_token', 'callback_url', 'token_type'] as const;

// UUID_RE: RFC 9562 text form, any version (v1 in the SPEC's example), any letter case.

const callbackUrl = (policy: UrlPolicy) => (value: string, helpers: Joi.CustomHelpers): string | Joi.ErrorReport => {
  // Before parsing: the parser would repair these (drop CR/LF/TAB, trim, encode) unseen.
  if (URL_FORBIDDEN_CHAR_RE.test(value)) return helpers.error('url.characters');
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return helpers.error('url.absolute');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return helpers.error('url.scheme');
  // The WHATWG parser repairs "http:host", "http:/host" and " http://host"; the stored URL
  // is the client's text, so it must already be the absolute form with an authority.
  if (!/^https?:\/\//i.test(value)) return helpers.error('url.absolute');
  if (u.username !== '' || u.password !== '' || /^[a-z]+:\/\/[^/?#]*@/i.test(value)) return helpers.error('url.userinfo');
  if (u.hostname === '') return helpers.error('url.absolute');
  // Where the text alone decides (IP literals, metadata names, the allow-list), refuse now;
  // names are checked again on their resolved addresses at delivery.
  const verdict = checkHost(policy, u.hostname);
  if (!verdict.ok) return helpers.error('url.policy', { reason: verdict.reason });
  return value;
};

/** The body schema under a callback URL policy (CALLBACK_ALLOWED_HOSTS). */
export const createSessionSchema = (policy: UrlPolicy) => Joi.object({
  station_id: Joi.string().required().pattern(UUID).description('RFC 9562 UUID, any version, any letter case').example('123e4567-e89b-12d3-a456-426614174000').messages({
    'string.pattern.base': 'must be a UUID (8-4-4-4-12 hex digits)',
  }),
  driver_token: Joi.string().required().pattern(TOKEN).description('the credential (RFID uid, app token)').example('ABCD-efgh1234567890_~valid.token').messages({
    'string.pattern.base': 'must be 20 to 80 characters from A-Z a-z 0-9 . _ ~ -',
  }),
  callback_url: Joi.string().required().max(2048).custom(callbackUrl(policy))
    .description('absolute http: or https: URL without user information, no spaces or control characters, used exactly as given; ' +
      'link-local and cloud-metadata hosts are refused, and with CALLBACK_ALLOWED_HOSTS only those hosts are allowed')
    .example('https://client.app/api/callbacks/charge-result')
    .messages({
    'string.max': 'must be at most 2048 characters',
    'url.absolute': 'must be an absolute http: or https: URL',
    'url.characters': 'must not contain spaces or control characters (percent-encode them: %20, %0D, %0A, %09)',
    'url.scheme': 'must use the http: or https: scheme',
    'url.userinfo': 'must not contain user information (user:password@)',
    'url.policy': 'is not an allowed callback target: {#reason}',
  }),
  token_type: Joi.string().valid(...TOKEN_TYPES).default(DEFAULT_TOKEN_TYPE).description('OCPI 2.2.1 TokenType of driver_token').messages({
    'any.only': `must be one of ${TOKEN_TYPES.join(', ')}`,
  }),
})
  .required()
  .messages({
    'object.base': 'the request body must be a JSON object',
    'any.required': 'is required',
    'string.base': 'must be a string',
    'string.empty': 'must not be empty',
  })
  .prefs({ abortEarly: false, convert: false, errors: { wrap: { label: false } } });

/** The schema with no allow-list (link-local and metadata targets are still refused); made
 * on call, not at load: the service builds its own under its policy (src/http/session.ts). */
export const sessionSchema = () => createSessionSchema(compilePolicy(null));

export type SessionBody = Body;

export interface FieldError {
  field: string;
  message: string;
}

const snake = (s: string) =>
  s
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[-\s]+/g, '_')
    .toLowerCase();

/** The SPEC's field name a client probably meant (stationId, Station-ID → station_id). */
export function hintFor(key: string): string | null {
  const guess = snake(key);
  return (FIELDS as readonly string[]).includes(guess) && guess !== key ? guess : null;
}

/** Joi's details as the API's `errors` list: one entry per bad field, unknown fields named. */
export function fieldErrors(err: Joi.ValidationError): FieldError[] {
  const out: FieldError[] = [];
  for (const d of err.details) {
    if (d.type === 'object.unknown') {
      const key = String(d.context?.key ?? d.path.at(-1));
      const hint = hintFor(key);
      out.push({ field: key, message: hint ? `unknown field; did you mean "${hint}"?` : 'unknown field' });
      continue;
    }
    const field = d.path.length ? d.path.join('.') : 'body';
    out.push({ field, message: field === 'body' ? d.message : d.message.replace(/^"[^"]*" /, '') });
  }
  return out;
}
