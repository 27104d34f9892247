import assert from 'node:assert/strict';

// SPEC §1's error shape, checked the same way for every refusal of the fault suite.

export interface ErrorBody {
  status: string;
  message: string;
  errors: Array<{ field: string; message: string }>;
}

/** The body is the SPEC's error shape with this API status, and nothing leaks from inside. */
export function assertShape(body: unknown, apiStatus: string, context = ''): ErrorBody {
  const b = (typeof body === 'string' ? JSON.parse(body) : body) as ErrorBody;
  assert.ok(b && typeof b === 'object', `an error body: ${context}`);
  assert.deepEqual(Object.keys(b).sort(), ['errors', 'message', 'status'], context);
  assert.equal(b.status, apiStatus, context);
  assert.equal(typeof b.message, 'string', context);
  assert.ok(b.message.length > 0, context);
  assert.ok(Array.isArray(b.errors), context);
  for (const e of b.errors) {
    assert.deepEqual(Object.keys(e).sort(), ['field', 'message'], context);
    assert.ok(typeof e.field === 'string' && typeof e.message === 'string' && e.message.length > 0, context);
  }
  assert.doesNotMatch(JSON.stringify(b), /\\n\s+at |SyntaxError|node_modules|Unexpected token|Boom|SQLITE/, context);
  return b;
}
