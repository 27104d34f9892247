import type { ServerRoute } from '@hapi/hapi';
import type Joi from 'joi';
import joiToJson from 'joi-to-json';
import * as answers from './answers.ts';
import type { HeaderDoc, RouteDoc } from './routedoc.ts';

// The OpenAPI 3.1 description of the API (GET /openapi.json, `chargegate openapi`), made
// from Hapi's route table: every route carries its notes in `options.plugins.openapi`,
// with the very joi schema it validates its input with and the joi schemas of its
// answers. Nothing is kept by hand beside the routes, so the document cannot drift from
// them; test/http/openapi.test.ts holds every real answer against it.

/** A route of Hapi's table (server.table()) or of a route list: enough to document it. */
export interface DocumentedRoute {
  method: string;
  path: string;
  settings?: { plugins?: { openapi?: RouteDoc } };
  options?: ServerRoute['options'];
}

const STRING = { type: 'string' };

// The package is CommonJS (module.exports = parse); its types describe an ES default export.
const toJsonSchema = joiToJson as unknown as (schema: Joi.Schema, mode: 'open-api-3.1') => Record<string, unknown>;

/** The callback as a webhook (SPEC §2): body, Standard Webhooks headers, and what each answer means. */
const WEBHOOK = {
  post: {
    operationId: 'chargingSessionResult',
    summary: 'The decision, POSTed to the callback_url of the request',
    description:
      'Sent once the decision is stored. Delivery is at-least-once: a receiver deduplicates on `webhook-id`, ' +
      'which is the request_id and stays the same across retries. Redirects are not followed. ' +
      'See docs/contract.md for retries, backoff and signing.',
    tags: ['callback'],
    parameters: [
      { name: 'webhook-id', in: 'header', required: true, description: 'the request_id; the same on every retry', schema: { type: 'string', format: 'uuid' } },
      { name: 'webhook-timestamp', in: 'header', required: true, description: 'seconds since the Unix epoch when this attempt was sent', schema: { type: 'string', pattern: '^[0-9]+$' } },
      {
        name: 'webhook-signature',
        in: 'header',
        required: false,
        description:
          'present when CALLBACK_SIGNING_SECRET is set: space-separated `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` ' +
          '(Standard Webhooks), one per configured key',
        schema: { type: 'string', pattern: '^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$' },
      },
    ],
    requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/CallbackBody' } } } },
    responses: {
      '2XX': { description: 'delivered; the body is ignored' },
      '408': { description: 'retried with backoff' },
      '429': { description: 'retried, not before Retry-After', headers: { 'Retry-After': { description: 'seconds or an HTTP date', schema: STRING } } },
      '5XX': { description: 'retried with exponential backoff and full jitter' },
      default: { description: 'any other status (3xx, other 4xx): failed at once, recorded, replayable by an admin' },
    },
  },
};

/** JSON Schema of a joi schema; a labelled (or named) one goes into components and is referenced. */
function schemaOf(schema: Joi.Schema, components: Record<string, unknown>, name?: string): Record<string, unknown> {
  const json = toJsonSchema(schema, 'open-api-3.1');
  const label = name ?? (schema.describe().flags as { label?: string } | undefined)?.label;
  if (!label) return json;
  components[label] = json;
  return { $ref: `#/components/schemas/${label}` };
}

function headersOf(h: Record<string, HeaderDoc> | undefined) {
  if (!h) return undefined;
  return Object.fromEntries(
    Object.entries(h).map(([name, d]) => [name, { description: d.description, required: d.required ?? false, schema: d.schema ?? STRING }]),
  );
}

function operation(doc: RouteDoc, body: Joi.Schema | undefined, components: Record<string, unknown>) {
  const parameters = [
    ...Object.entries(doc.params ?? {}).map(([name, p]) => ({ name, in: 'path', required: true, description: p.description, schema: p.schema })),
    ...Object.entries(doc.headers ?? {}).map(([name, h]) => ({ name, in: 'header', required: h.required ?? false, description: h.description, schema: h.schema ?? STRING })),
  ];
  const responses: Record<string, unknown> = {};
  for (const [status, a] of Object.entries(doc.answers)) {
    const type = a.contentType ?? 'application/json';
    const schema = a.schema ? schemaOf(answers[a.schema], components) : a.rawSchema;
    const headers = headersOf(a.headers);
    responses[status] = {
      description: a.description,
      ...(headers ? { headers } : {}),
      ...(schema ? { content: { [type]: { schema } } } : {}),
    };
  }
  return {
    operationId: doc.operationId,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: doc.tags,
    ...(parameters.length ? { parameters } : {}),
    ...(doc.body && body
      ? {
          requestBody: {
            required: true,
            ...(doc.body.description ? { description: doc.body.description } : {}),
            content: { 'application/json': { schema: schemaOf(body, components, doc.body.name) } },
          },
        }
      : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document of the routes given (Hapi's table), in route order. */
export async function openApiDocument(routes: readonly DocumentedRoute[], version: string): Promise<Record<string, unknown>> {
  const schemas: Record<string, unknown> = {};
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const doc = r.settings?.plugins?.openapi ?? (r.options as { plugins?: { openapi?: RouteDoc } } | undefined)?.plugins?.openapi;
    if (!doc) continue;
    const body = doc.body ? await doc.body.schema() : undefined;
    (paths[r.path] ??= {})[r.method.toLowerCase()] = operation(doc, body, schemas);
  }
  schemaOf(answers.callbackBody, schemas);
  return {
    openapi: '3.1.0',
    info: {
      title: 'chargegate',
      version,
      summary: 'Asynchronous EV-charging authorization: durable accept, decision, signed callback',
      description:
        'A client POSTs a charging-session start; the answer (202) comes once the request is on disk. The decision ' +
        '(allowed, not_allowed, unknown, invalid) is POSTed to the callback_url (the `chargingSessionResult` webhook). ' +
        'Delivery semantics, retries, signing and statuses: docs/contract.md in the chargegate repository.',
    },
    tags: [
      { name: 'sessions', description: 'charging-session requests' },
      { name: 'operations', description: 'health, metrics, this document' },
      { name: 'callback', description: 'what chargegate sends to clients' },
    ],
    paths,
    webhooks: { chargingSessionResult: WEBHOOK },
    components: { schemas },
  };
}
