import type Joi from 'joi';
import type * as Answers from './answers.ts';

// What each route says about itself for the OpenAPI document (src/http/openapi.ts makes
// the document from these). Apart from openapi.ts so that the routes carry their notes
// without loading the generator (joi-to-json, lodash) at every start: it loads with the
// first request for the document. Answers name their schema in src/http/answers.ts, whose
// joi schemas are built with the generator too, not by every start.

/** The name of a joi schema exported by src/http/answers.ts. */
export type AnswerSchema = {
  [K in keyof typeof Answers]: (typeof Answers)[K] extends Joi.Schema ? K : never;
}[keyof typeof Answers];

/** A request or response header, as documented. */
export interface HeaderDoc {
  description: string;
  required?: boolean;
  schema?: Record<string, unknown>;
}

export interface AnswerDoc {
  description: string;
  /** The body's shape; for JSON answers a joi schema of answers.ts, turned into JSON Schema. */
  schema?: AnswerSchema;
  /** Default application/json. */
  contentType?: string;
  /** A JSON Schema for non-JSON bodies (text/plain). */
  rawSchema?: Record<string, unknown>;
  headers?: Record<string, HeaderDoc>;
}

/** What a route says about itself (options.plugins.openapi). */
export interface RouteDoc {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** The body, with the schema the route validates it with (loaded on demand: joi is not loaded by a start). */
  body?: { schema: () => Promise<Joi.Schema>; name: string; description?: string };
  /** Path parameters by name. */
  params?: Record<string, { description: string; schema: Record<string, unknown> }>;
  /** Request headers by name. */
  headers?: Record<string, HeaderDoc>;
  /** Every answer the route gives, by status code. */
  answers: Record<number, AnswerDoc>;
}

declare module '@hapi/hapi' {
  interface PluginSpecificConfiguration {
    openapi?: RouteDoc;
  }
}

/** Error answers shared by every route with a body (Hapi's and Node's own refusals). */
export const errorDoc = (description: string, headers?: Record<string, HeaderDoc>): AnswerDoc => ({
  description,
  schema: 'errorAnswer',
  ...(headers ? { headers } : {}),
});

/** The 401 of a route behind API keys (SPEC "Who may call"). */
export const unauthorizedDoc = (description = 'API keys are in use and the key is missing, unknown, revoked or expired (status `unauthorized`; the same answer whatever was wrong)') =>
  errorDoc(description, { 'WWW-Authenticate': { description: '`Bearer realm="chargegate"`', required: true } });

