import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ServerInjectOptions, ServerInjectResponse } from '@hapi/hapi';
import { startApp } from '../support/app.ts';
import { startReceiver, type Receiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// Route-level checks of POST /api/v1/charging-session against SPEC §1, through
// server.inject() on the real service (real SQLite file, real worker threads).

const PATH = '/api/v1/charging-session';
const ACCEPTED_MESSAGE = 'Request is being processed asynchronously. The result will be sent to the provided callback URL.';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The SPEC's example request, verbatim. */
const EXAMPLE = {
  station_id: '123e4567-e89b-12d3-a456-426614174000',
  driver_token: 'ABCD-efgh1234567890_~valid.token',
  callback_url: 'https://client.app/api/callbacks/charge-result',
};

type Started = Awaited<ReturnType<typeof startApp>>;

/** startApp() wants a test context; a describe block shares one app and cleans up after all its tests. */
function suiteContext() {
  const cleanups: Array<() => unknown> = [];
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  return { after: (fn: () => unknown) => void cleanups.push(fn) };
}

interface ErrorBody {
  status: string;
  message: string;
  errors: Array<{ field: string; message: string }>;
}

function rowCount(s: Started): number {
  return s.app.db.prepare('SELECT COUNT(*) FROM charging_requests').pluck().get() as number;
}

function post(s: Started, payload: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<ServerInjectResponse> {
  const opts: ServerInjectOptions = { method: 'POST', url: PATH, headers };
  if (payload !== undefined) opts.payload = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return s.app.server.inject(opts);
}

/** Checks the SPEC's error shape and that nothing leaks (stack traces, framework messages). */
function assertErrorShape(res: ServerInjectResponse, status: number, apiStatus: string): ErrorBody {
  assert.equal(res.statusCode, status, res.payload);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = JSON.parse(res.payload) as ErrorBody;
  assert.deepEqual(Object.keys(body).sort(), ['errors', 'message', 'status']);
  assert.equal(body.status, apiStatus);
  assert.equal(typeof body.message, 'string');
  assert.ok(body.message.length > 0);
  assert.ok(Array.isArray(body.errors));
  for (const e of body.errors) {
    assert.deepEqual(Object.keys(e).sort(), ['field', 'message']);
    assert.equal(typeof e.field, 'string');
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 0);
  }
  assert.doesNotMatch(res.payload, /\n\s+at |SyntaxError|node_modules|Unexpected token|Boom/);
  return body;
}

/** Sends a request that must be refused: the error shape, and no row written. */
async function refused(s: Started, status: number, payload: unknown, headers?: Record<string, string>): Promise<ErrorBody> {
  const before = rowCount(s);
  const res = await post(s, payload, headers);
  const body = assertErrorShape(res, status, 'invalid');
  assert.equal(rowCount(s), before, 'a refused request must not insert a row');
  return body;
}

/** A 400 whose errors name exactly the given fields (in any order). */
async function invalidFields(s: Started, payload: unknown, fields: string[]): Promise<ErrorBody> {
  const body = await refused(s, 400, payload);
  assert.deepEqual(body.errors.map((e) => e.field).sort(), [...fields].sort(), JSON.stringify(body.errors));
  return body;
}

async function accepted(s: Started, payload: unknown, headers?: Record<string, string>): Promise<string> {
  const before = rowCount(s);
  const res = await post(s, payload, headers);
  assert.equal(res.statusCode, 202, res.payload);
  const body = JSON.parse(res.payload) as { request_id: string };
  assert.match(body.request_id, UUID);
  assert.equal(rowCount(s), before + 1);
  return body.request_id;
}

describe('POST /api/v1/charging-session', () => {
  const ctx = suiteContext();
  let s: Started;
  let receiver: Receiver;
  const body = (over: Record<string, unknown> = {}) => ({ ...EXAMPLE, callback_url: receiver.url('/cb'), ...over });

  before(async () => {
    receiver = await startReceiver((_c, _n, res) => res.writeHead(204).end());
    ctx.after(() => receiver.close());
    // Callbacks that cannot be delivered (client.app) are tried once and then wait an hour,
    // so no test depends on the outside network.
    s = await startApp(ctx, { CALLBACK_TIMEOUT_MS: '1000', CALLBACK_RETRY_BASE_MS: '3600000', SHUTDOWN_TIMEOUT_MS: '1000' });
  });

  describe('accepted', () => {
    it("the SPEC's example → 202, exact body, Location, and the row is in the SQLite file", async () => {
      const before = rowCount(s);
      const res = await post(s, EXAMPLE);
      assert.equal(res.statusCode, 202, res.payload);
      const got = JSON.parse(res.payload) as { request_id: string };
      assert.match(got.request_id, UUID);
      assert.equal(res.payload, JSON.stringify({ status: 'accepted', message: ACCEPTED_MESSAGE, request_id: got.request_id }));
      assert.equal(res.headers.location, `/api/v1/charging-session/${got.request_id}`);
      assert.match(String(res.headers['content-type']), /^application\/json/);

      assert.equal(rowCount(s), before + 1);
      const row = s.app.db
        .prepare('SELECT station_id, callback_url, token_mask, token_hash, created_at, state FROM charging_requests WHERE id = ?')
        .get(got.request_id) as Record<string, unknown> | undefined;
      assert.ok(row, 'the accepted request is in charging_requests');
      assert.equal(row.station_id, EXAMPLE.station_id);
      assert.equal(row.callback_url, EXAMPLE.callback_url);
      assert.match(String(row.token_hash), /^[0-9a-f]{64}$/);
      assert.notEqual(row.token_mask, EXAMPLE.driver_token);
      assert.equal(typeof row.created_at, 'number');
      assert.ok(['queued', 'authorizing', 'delivering'].includes(String(row.state)), String(row.state));
    });

    it('each accepted request gets its own request_id', async () => {
      const a = await accepted(s, body());
      const b = await accepted(s, body());
      assert.notEqual(a, b);
    });

    it('the callback is really sent for an accepted request', async () => {
      const id = await accepted(s, body());
      const call = await waitFor(() => receiver.callsFor(id)[0], { what: 'the callback' });
      assert.equal(call.json?.station_id, EXAMPLE.station_id);
    });

    it('Content-Type application/json; charset=utf-8 is accepted', async () => {
      await accepted(s, body(), { 'content-type': 'application/json; charset=utf-8' });
    });

    it('the media type is matched without regard to letter case', async () => {
      await accepted(s, body(), { 'content-type': 'Application/JSON' });
    });
  });

  describe('station_id', () => {
    const good: Array<[string, string]> = [
      ['v1 (the SPEC example)', '123e4567-e89b-12d3-a456-426614174000'],
      ['v4', '9b2f3c1e-6d4a-4f8b-9c3e-2a1b0c9d8e7f'],
      ['v7', '01890a5d-ac96-774b-bcce-b302099a8057'],
      ['nil', '00000000-0000-0000-0000-000000000000'],
      ['max', 'ffffffff-ffff-ffff-ffff-ffffffffffff'],
      ['upper case', '123E4567-E89B-12D3-A456-426614174000'],
      ['mixed case', '9B2f3C1e-6d4A-4f8b-9C3e-2a1B0c9D8e7F'],
    ];
    for (const [name, id] of good) {
      it(`accepts a ${name} UUID and stores it as sent`, async () => {
        const rid = await accepted(s, body({ station_id: id }));
        const stored = s.app.db.prepare('SELECT station_id FROM charging_requests WHERE id = ?').pluck().get(rid);
        assert.equal(stored, id);
      });
    }

    const bad: Array<[string, unknown]> = [
      ['not a UUID', 'station-7'],
      ['empty', ''],
      ['32 hex digits without hyphens', '123e4567e89b12d3a456426614174000'],
      ['braces', '{123e4567-e89b-12d3-a456-426614174000}'],
      ['urn prefix', 'urn:uuid:123e4567-e89b-12d3-a456-426614174000'],
      ['a non-hex digit', '123e4567-e89b-12d3-a456-42661417400g'],
      ['one digit short', '123e4567-e89b-12d3-a456-42661417400'],
      ['one digit long', '123e4567-e89b-12d3-a456-4266141740000'],
      ['hyphens in the wrong places', '123e456-7e89b-12d3-a456-426614174000'],
      ['surrounding spaces', ' 123e4567-e89b-12d3-a456-426614174000 '],
      ['a trailing newline', '123e4567-e89b-12d3-a456-426614174000\n'],
      ['a number', 12345],
      ['null', null],
      ['an object', { id: '123e4567-e89b-12d3-a456-426614174000' }],
    ];
    for (const [name, id] of bad) {
      it(`rejects ${name}`, async () => {
        await invalidFields(s, body({ station_id: id }), ['station_id']);
      });
    }
  });

  describe('driver_token', () => {
    it('20 characters is the shortest accepted', async () => {
      await accepted(s, body({ driver_token: 'A'.repeat(20) }));
    });

    it('80 characters is the longest accepted, every allowed character included', async () => {
      const allowed = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-';
      const token = (allowed + 'x'.repeat(80)).slice(0, 80);
      assert.equal(token.length, 80);
      await accepted(s, body({ driver_token: token }));
    });

    it('19 characters is rejected, with a message saying what is allowed', async () => {
      const res = await invalidFields(s, body({ driver_token: 'A'.repeat(19) }), ['driver_token']);
      assert.match(res.errors[0]!.message, /20 to 80/);
    });

    it('81 characters is rejected', async () => {
      await invalidFields(s, body({ driver_token: 'A'.repeat(81) }), ['driver_token']);
    });

    const badChars: Array<[string, string]> = [
      ['a space', 'ABCD efgh1234567890_valid'],
      ['a plus', 'ABCD+efgh1234567890_valid'],
      ['a slash', 'ABCD/efgh1234567890_valid'],
      ['an equals sign', 'ABCDefgh1234567890_valid='],
      ['an at sign', 'ABCD@efgh1234567890_valid'],
      ['a non-ASCII letter', 'ABCDéfgh1234567890_valid'],
      ['a trailing newline', 'ABCDefgh1234567890_valid\n'],
      ['a NUL', 'ABCDefgh1234567890_valid\u0000'],
    ];
    for (const [name, token] of badChars) {
      it(`rejects ${name}`, async () => {
        await invalidFields(s, body({ driver_token: token }), ['driver_token']);
      });
    }

    const nonStrings: Array<[string, unknown]> = [
      ['a number', 12345678901234567890],
      ['an array', ['ABCD-efgh1234567890_~valid.token']],
      ['null', null],
      ['a boolean', true],
    ];
    for (const [name, token] of nonStrings) {
      it(`rejects ${name} (must be a string)`, async () => {
        const res = await invalidFields(s, body({ driver_token: token }), ['driver_token']);
        assert.match(res.errors[0]!.message, /string/);
      });
    }
  });

  describe('callback_url', () => {
    const host = 'https://client.app/';
    const ofLength = (n: number) => host + 'a'.repeat(n - host.length);

    const good: Array<[string, () => string]> = [
      ['http', () => receiver.url('/cb')],
      ['https with port, path and query', () => 'https://client.app:8443/api/callbacks/charge-result?site=7#frag'],
      ['an IPv6 literal host', () => 'http://[::1]:9/cb'],
      ['upper-case scheme', () => 'HTTPS://client.app/cb'],
      ['exactly 2048 characters', () => ofLength(2048)],
    ];
    for (const [name, url] of good) {
      it(`accepts ${name} and stores it as sent`, async () => {
        const u = url();
        const rid = await accepted(s, body({ callback_url: u }));
        assert.equal(s.app.db.prepare('SELECT callback_url FROM charging_requests WHERE id = ?').pluck().get(rid), u);
      });
    }

    it('2049 characters is rejected, naming the limit', async () => {
      assert.equal(ofLength(2049).length, 2049);
      const res = await invalidFields(s, body({ callback_url: ofLength(2049) }), ['callback_url']);
      assert.match(res.errors[0]!.message, /2048/);
    });

    const bad: Array<[string, unknown]> = [
      ['user and password', 'http://user:pw@client.app/cb'],
      ['a user only', 'http://user@client.app'],
      ['an empty user-info', 'https://@client.app/cb'],
      ['a password only', 'https://:pw@client.app/cb'],
      ['a relative path', '/api/callbacks/charge-result'],
      ['no scheme', 'client.app/api/callbacks'],
      ['a scheme-relative URL', '//client.app/cb'],
      ['ftp:', 'ftp://client.app/cb'],
      ['javascript:', 'javascript:alert(1)'],
      ['file:', 'file:///etc/passwd'],
      ['data:', 'data:text/plain,hello'],
      ['ws:', 'ws://client.app/cb'],
      ['http: without //', 'http:client.app/cb'],
      ['http: with one /', 'http:/client.app/cb'],
      ['leading spaces', '  https://client.app/cb'],
      ['a host-less URL', 'http://'],
      ['an empty string', ''],
      ['a number', 8080],
      ['an object', { href: 'https://client.app/cb' }],
      ['an array', ['https://client.app/cb']],
      ['null', null],
    ];
    for (const [name, url] of bad) {
      it(`rejects ${name}`, async () => {
        await invalidFields(s, body({ callback_url: url }), ['callback_url']);
      });
    }

    it('user-info is named in the message', async () => {
      const res = await invalidFields(s, body({ callback_url: 'http://user:pw@client.app/' }), ['callback_url']);
      assert.match(res.errors[0]!.message, /user/);
    });

    // SPEC §2: used exactly as given; text with control characters or spaces is refused,
    // never repaired. The WHATWG parser would drop CR/LF/TAB anywhere, trim the ends and
    // percent-encode the rest, so what is POSTed would not be what was stored.
    const forbidden: Array<[string, string]> = [
      ['CR', '\r'], ['LF', '\n'], ['CRLF', '\r\n'], ['TAB', '\t'], ['a space', ' '], ['NUL', '\0'], ['DEL', '\x7f'],
      ['ESC', '\x1b'], ['C1 NEL', '\x85'], ['a no-break space', '\u00a0'], ['a line separator', '\u2028'],
    ];
    /** Where the character goes in http://127.0.0.1:PORT/cb/x?q=1#f. */
    const positions: Array<[string, (u: string, c: string) => string]> = [
      ['first', (u, c) => c + u],
      ['in the scheme', (u, c) => u.replace('http', `ht${c}tp`)],
      ['in the host', (u, c) => u.replace('127.0.0.1', `127.0.${c}0.1`)],
      ['before the port', (u, c) => u.replace(/:(\d+)\//, `${c}:$1/`)],
      ['in the path', (u, c) => u.replace('/cb/x', `/cb${c}/x`)],
      ['in the query', (u, c) => u.replace('?q=1', `?q=${c}1`)],
      ['in the fragment', (u, c) => u.replace('#f', `#f${c}f`)],
      ['last', (u, c) => u + c],
    ];
    for (const [name, c] of forbidden) {
      it(`rejects ${name} anywhere in the URL, naming the rule`, async () => {
        const clean = receiver.url('/cb/x?q=1#f');
        for (const [where, put] of positions) {
          const url = put(clean, c);
          assert.notEqual(url, clean, where);
          const res = await invalidFields(s, body({ callback_url: url }), ['callback_url']);
          assert.match(res.errors[0]!.message, /spaces or control characters/, `${name} ${where}: ${res.errors[0]!.message}`);
        }
      });
    }

    it('rejects the header-injection example instead of POSTing its repaired form', async () => {
      const calls = receiver.calls.length;
      await invalidFields(s, body({ callback_url: receiver.url('/x\r\nX-Injected: 1') }), ['callback_url']);
      assert.equal(receiver.calls.length, calls);
    });

    it('accepts the same characters percent-encoded, stores them as sent and POSTs exactly that', async () => {
      const u = receiver.url('/x%0D%0AX-Injected:%201?a=%09b%20c');
      const rid = await accepted(s, body({ callback_url: u }));
      assert.equal(s.app.db.prepare('SELECT callback_url FROM charging_requests WHERE id = ?').pluck().get(rid), u);
      const call = await waitFor(() => receiver.callsFor(rid)[0], { what: 'the callback' });
      assert.equal(call.path, '/x%0D%0AX-Injected:%201?a=%09b%20c');
      assert.equal(call.headers['x-injected'], undefined);
    });
  });

  describe('several problems in one request', () => {
    it('every bad field is listed', async () => {
      const res = await invalidFields(
        s,
        { station_id: 'nope', driver_token: 'short', callback_url: 'ftp://client.app/cb' },
        ['station_id', 'driver_token', 'callback_url'],
      );
      assert.equal(new Set(res.errors.map((e) => e.message)).size, 3, 'each field gets its own message');
    });

    it('an empty object lists all three fields as missing', async () => {
      const res = await invalidFields(s, {}, ['station_id', 'driver_token', 'callback_url']);
      for (const e of res.errors) assert.match(e.message, /required/);
    });

    it('a missing field is listed next to a bad one', async () => {
      const res = await invalidFields(s, { station_id: EXAMPLE.station_id, driver_token: 'bad token!' }, ['driver_token', 'callback_url']);
      assert.match(res.errors.find((e) => e.field === 'callback_url')!.message, /required/);
    });

    it('an unknown field is named', async () => {
      const res = await invalidFields(s, body({ colour: 'red' }), ['colour']);
      assert.match(res.errors[0]!.message, /unknown/);
    });

    it('stationId is hinted to station_id (and station_id is reported missing)', async () => {
      const { station_id, ...rest } = body();
      const res = await invalidFields(s, { ...rest, stationId: station_id }, ['stationId', 'station_id']);
      assert.match(res.errors.find((e) => e.field === 'stationId')!.message, /station_id/);
    });

    it('camel-case names of all fields are hinted, unknown and bad fields together', async () => {
      const res = await invalidFields(
        s,
        { stationId: EXAMPLE.station_id, driverToken: EXAMPLE.driver_token, callbackUrl: EXAMPLE.callback_url, extra: 1 },
        ['stationId', 'driverToken', 'callbackUrl', 'extra', 'station_id', 'driver_token', 'callback_url'],
      );
      assert.match(res.errors.find((e) => e.field === 'driverToken')!.message, /driver_token/);
      assert.match(res.errors.find((e) => e.field === 'callbackUrl')!.message, /callback_url/);
      assert.doesNotMatch(res.errors.find((e) => e.field === 'extra')!.message, /did you mean/);
    });
  });

  describe('a body that is not a JSON object', () => {
    const bodies: Array<[string, string | undefined]> = [
      ['not JSON', 'station_id=123e4567-e89b-12d3-a456-426614174000'],
      ['truncated JSON', '{"station_id": "123e4567-e89b-12d3-a456-426614174000",'],
      ['a JSON array', JSON.stringify([EXAMPLE])],
      ['a JSON string', JSON.stringify('hello')],
      ['a JSON number', '42'],
      ['JSON null', 'null'],
      ['an empty body', undefined],
      ['a prototype-poisoning object', '{"__proto__":{"admin":true},"station_id":"123e4567-e89b-12d3-a456-426614174000"}'],
    ];
    for (const [name, payload] of bodies) {
      it(`${name} → 400 in the error shape, no stack trace`, async () => {
        const res = await refused(s, 400, payload);
        assert.equal(res.errors.length, 1, JSON.stringify(res.errors));
        assert.equal(res.errors[0]!.field, 'body');
      });
    }

    it('says what was wrong: not JSON vs not an object', async () => {
      assert.match((await refused(s, 400, '{nope')).message, /JSON/);
      assert.match((await refused(s, 400, '[1,2]')).errors[0]!.message, /object/);
    });
  });

  describe('content type', () => {
    const types: Array<[string, Record<string, string>]> = [
      ['text/plain', { 'content-type': 'text/plain' }],
      ['no Content-Type', {}],
      ['a form', { 'content-type': 'application/x-www-form-urlencoded' }],
      ['a JSON look-alike', { 'content-type': 'application/merge-patch+json' }],
    ];
    for (const [name, headers] of types) {
      it(`${name} → 415 in the error shape, even with a valid JSON body`, async () => {
        const res = await refused(s, 415, JSON.stringify(EXAMPLE), headers);
        assert.match(res.message, /application\/json/);
      });
    }
  });

  describe('body size', () => {
    // JSON whitespace pads a valid request to an exact size.
    const padded = (bytes: number) => {
      const json = JSON.stringify(body());
      return json.slice(0, -1) + ' '.repeat(bytes - Buffer.byteLength(json)) + '}';
    };

    it('exactly 16 KiB is accepted', async () => {
      const payload = padded(16 * 1024);
      assert.equal(Buffer.byteLength(payload), 16 * 1024);
      await accepted(s, payload);
    });

    it('16 KiB + 1 byte → 413 in the error shape', async () => {
      const payload = padded(16 * 1024 + 1);
      assert.equal(Buffer.byteLength(payload), 16 * 1024 + 1);
      const res = await refused(s, 413, payload);
      assert.match(res.message, /16 KiB/);
    });

    it('a much larger body → 413', async () => {
      await refused(s, 413, JSON.stringify({ ...EXAMPLE, pad: 'x'.repeat(1024 * 1024) }));
    });
  });

  describe('unknown routes', () => {
    const routes: Array<[string, string]> = [
      ['GET', '/api/v1/nope'],
      ['POST', '/api/v2/charging-session'],
    ];
    for (const [method, url] of routes) {
      it(`${method} ${url} → 404 in the error shape`, async () => {
        const before = rowCount(s);
        const res = await s.app.server.inject({ method, url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(EXAMPLE) });
        const got = assertErrorShape(res, 404, 'not_found');
        assert.deepEqual(got.errors, []);
        assert.equal(rowCount(s), before);
      });
    }
  });
});

describe('POST /api/v1/charging-session at the queue bound', () => {
  const ctx = suiteContext();
  let s: Started;
  let receiver: Receiver;

  before(async () => {
    // The receiver always fails and a retry waits an hour, so accepted rows stay open.
    receiver = await startReceiver((_c, _n, res) => res.writeHead(500).end());
    ctx.after(() => receiver.close());
    s = await startApp(ctx, { QUEUE_MAX_SIZE: '2', CALLBACK_RETRY_BASE_MS: '3600000', SHUTDOWN_TIMEOUT_MS: '1000' });
  });

  it('the request past QUEUE_MAX_SIZE gets 503 + Retry-After, "rejected", and no row', async () => {
    const req = { ...EXAMPLE, callback_url: receiver.url('/cb') };
    const first = await accepted(s, req);
    const second = await accepted(s, req);
    // Both callbacks failed and wait for their retry: still open, still counted.
    await waitFor(() => receiver.callsFor(first).length > 0 && receiver.callsFor(second).length > 0, { what: 'both first attempts' });
    await waitFor(
      () => s.app.db.prepare("SELECT COUNT(*) FROM charging_requests WHERE attempts = 1 AND state = 'delivering'").pluck().get() === 2,
      { what: 'both attempts recorded' },
    );

    const before = rowCount(s);
    const res = await post(s, req);
    const got = assertErrorShape(res, 503, 'rejected');
    assert.match(String(res.headers['retry-after']), /^[1-9][0-9]*$/);
    assert.match(got.message, /queue/);
    assert.equal(rowCount(s), before);
  });

  it('a full queue still answers 400 to an invalid request (validation comes first)', async () => {
    const res = await refused(s, 400, { ...EXAMPLE, driver_token: 'short' });
    assert.deepEqual(res.errors.map((e) => e.field), ['driver_token']);
  });
});
