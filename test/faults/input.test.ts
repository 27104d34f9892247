import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import type { ServerInjectResponse } from '@hapi/hapi';
import { checkHost, compilePolicy } from '../../src/core/urlpolicy.ts';
import { TOKEN_RE, UUID_RE } from '../../src/core/validate.ts';
import { raw, rawPost } from './support/raw.ts';
import { assertShape } from './support/shape.ts';
import { startIntake, type Intake } from './support/intake.ts';

// Hostile input (issue: "nothing bad gets in"). Properties over the body, headers and URL
// through server.inject(), then what only a raw socket can send: invalid UTF-8, framing
// conflicts, header floods, bodies and headers that drip in. Every refusal must be
// 400/408/413/415/431 in the SPEC's error shape and write nothing; every conforming
// request must be accepted and stored exactly as sent. Accepted rows are never delivered
// (the dispatcher is stopped), so random callback hosts are never contacted.
//
// fast-check prints the seed and the shrunk counterexample of a failing property; rerun
// one with FC_SEED=<seed>.

const PATH = '/api/v1/charging-session';
const FIELDS = ['station_id', 'driver_token', 'callback_url'] as const;
const TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-'.split('');
const GOOD = {
  station_id: '123e4567-e89b-12d3-a456-426614174000',
  driver_token: 'ABCD-efgh1234567890_~valid.token',
  callback_url: 'http://127.0.0.1:9/cb',
};
const policy = compilePolicy(null);
const seed = process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {};
const runs = (numRuns: number) => ({ numRuns, ...seed });

// ---- generators of conforming requests ----

const stationId = fc.oneof(
  fc.mixedCase(fc.uuid({ version: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] })),
  fc.constantFrom('00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'),
);
const driverToken = fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 20, maxLength: 80 });
const callbackUrl = fc
  .webUrl({
    validSchemes: ['http', 'https'],
    withQueryParameters: true,
    withFragments: true,
    authoritySettings: { withIPv4: true, withIPv6: true, withPort: true },
  })
  .map((u) => (u.length % 3 === 0 ? u.replace(/^http/, 'HTTP') : u))
  .filter((u) => u.length <= 2048 && checkHost(policy, new URL(u).hostname).ok);
const conforming = fc.record({ station_id: stationId, driver_token: driverToken, callback_url: callbackUrl });

/**
 * Equivalent JSON texts of one object: member order, insignificant whitespace, and
 * characters written as \uXXXX escapes all vary; the value does not.
 */
const encoding = fc.record({
  order: fc.shuffledSubarray([...FIELDS], { minLength: 3, maxLength: 3 }),
  ws: fc.constantFrom('', ' ', '\n', '\t', ' \r\n '),
  escapeEvery: fc.integer({ min: 0, max: 7 }),
});
function encode(body: Record<string, string>, how: { order: string[]; ws: string; escapeEvery: number }): string {
  const str = (s: string) =>
    '"' + [...s].map((c, i) => (how.escapeEvery > 0 && i % how.escapeEvery === 0 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : JSON.stringify(c).slice(1, -1))).join('') + '"';
  const members = how.order.map((k) => `${how.ws}${str(k)}${how.ws}:${how.ws}${str(body[k]!)}${how.ws}`);
  return `${how.ws}{${members.join(',')}}${how.ws}`;
}

// ---- generators of non-conforming fields ----

const notAString = fc.jsonValue().filter((v) => typeof v !== 'string');
const badStation = fc.oneof(
  notAString,
  fc.string().filter((s) => !UUID_RE.test(s)),
  fc.uuid().map((u) => u.replace(/-/g, '')),
  fc.uuid().map((u) => `{${u}}`),
  fc.uuid().map((u) => `urn:uuid:${u}`),
  fc.tuple(fc.uuid(), fc.nat(35), fc.constantFrom('g', 'z', ' ', '-', 'é')).map(([u, i, c]) => u.slice(0, i) + c + u.slice(i + 1)).filter((s) => !UUID_RE.test(s)),
);
const badToken = fc.oneof(
  notAString,
  fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), maxLength: 19 }),
  fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 81, maxLength: 200 }),
  fc.string({ minLength: 20, maxLength: 80 }).filter((s) => !TOKEN_RE.test(s)),
);
const badUrl = fc.oneof(
  notAString,
  fc.string().filter((s) => !/^https?:\/\/[^/?#\s]/i.test(s)),
  fc.constantFrom(
    'ftp://client.app/cb', 'javascript:alert(1)', 'file:///etc/passwd', 'data:text/plain,x', '/api/callbacks', 'client.app/cb',
    'http:client.app/cb', 'http:/client.app/cb', ' http://client.app/cb', 'http://', 'https://user:pw@client.app/cb', 'http://user@client.app/',
    'http://169.254.169.254/latest/meta-data', 'http://[fe80::1]/cb', 'http://metadata.google.internal/x', 'http://0.0.0.0/cb', 'http://[::]/cb',
  ),
  fc.nat(3000).map((n) => `http://client.app/${'a'.repeat(2049 + n - 'http://client.app/'.length)}`),
  // A control character or a space anywhere in a good URL: refused, never repaired (SPEC §2).
  fc
    .tuple(callbackUrl, fc.nat(), fc.constantFrom('\r', '\n', '\r\n', '\t', ' ', '\0', '\x1f', '\x7f', '\x85', '\x9f', '\u00a0', '\u2028', '\u3000'))
    .map(([u, at, c]) => u.slice(0, at % (u.length + 1)) + c + u.slice(at % (u.length + 1))),
);
const badKey = fc.oneof(
  fc.string().filter((k) => !(FIELDS as readonly string[]).includes(k)),
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'stationId', 'Station-ID', 'DRIVER_TOKEN', 'callbackUrl', 'toString'),
);

type Mutation = { kind: 'drop' | 'bad'; field: (typeof FIELDS)[number]; value?: unknown } | { kind: 'extra'; field: string; value: unknown };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constantFrom(...FIELDS).map((field) => ({ kind: 'drop' as const, field })),
  badStation.map((value) => ({ kind: 'bad' as const, field: 'station_id' as const, value })),
  badToken.map((value) => ({ kind: 'bad' as const, field: 'driver_token' as const, value })),
  badUrl.map((value) => ({ kind: 'bad' as const, field: 'callback_url' as const, value })),
  fc.tuple(badKey, fc.jsonValue()).map(([field, value]) => ({ kind: 'extra' as const, field, value })),
);

/** Writes the members by hand so a "__proto__" member really is one (not a prototype). */
function withMutations(base: Record<string, string>, muts: Mutation[]): string {
  const members = new Map<string, unknown>(Object.entries(base));
  for (const m of muts) {
    if (m.kind === 'drop') members.delete(m.field);
    else members.set(m.field, m.value);
  }
  return '{' + [...members].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',') + '}';
}

// ---- an independent judge of raw bodies ----

/** The SPEC's rules applied to bytes without the service's code: the value when it conforms. */
function judge(bytes: Uint8Array): Record<string, string> | null {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const keys = Object.keys(v);
  if (keys.length !== 3 || !FIELDS.every((f) => keys.includes(f))) return null;
  // Each name written once, literally (escaped spellings make the judge say "no", which
  // only narrows what it vouches for).
  if (FIELDS.some((f) => text.split(`"${f}"`).length !== 2) || /\\u/i.test(text.replace(/"(?:[^"\\]|\\.)*"\s*(?=[,}])/g, ''))) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.station_id !== 'string' || !UUID_RE.test(o.station_id)) return null;
  if (typeof o.driver_token !== 'string' || !TOKEN_RE.test(o.driver_token)) return null;
  if (typeof o.callback_url !== 'string' || o.callback_url.length > 2048 || !o.callback_url.isWellFormed()) return null;
  // No control character (C0, DEL, C1) and no space of any kind.
  if (/[\u0000-\u0020\u007f-\u009f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/.test(o.callback_url)) return null;
  return o as Record<string, string>;
}

// ---- helpers ----

function post(s: Intake, payload: string | Buffer, headers: Record<string, string> = {}): Promise<ServerInjectResponse> {
  return s.app.server.inject({ method: 'POST', url: PATH, payload, headers: { 'content-type': 'application/json', ...headers } });
}

function storedRow(s: Intake, id: string) {
  return s.app.db.prepare('SELECT station_id, driver_token, callback_url, state FROM charging_requests WHERE id = ?').get(id) as Record<string, string> | undefined;
}

/** A refusal: this status, the SPEC's shape, no row written. */
async function refused(s: Intake, status: number, send: () => Promise<ServerInjectResponse>, context: string) {
  const before = s.rows();
  const res = await send();
  assert.equal(res.statusCode, status, `${context}: ${res.payload}`);
  const body = assertShape(res.payload, 'invalid', context);
  assert.equal(s.rows(), before, `${context}: a refused request wrote a row`);
  return body;
}

let keySeq = 0;

/** startIntake() wants a test context; a describe block shares one service and cleans up after its tests. */
function suiteContext() {
  const cleanups: Array<() => unknown> = [];
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  return { after: (fn: () => unknown) => void cleanups.push(fn) };
}

describe('hostile input: properties (fast-check)', () => {
  const ctx = suiteContext();
  let s: Intake;
  before(async () => {
    s = await startIntake(ctx);
  });
  it('conforming requests, however encoded, are always accepted and stored exactly as sent', async () => {
    await fc.assert(
      fc.asyncProperty(
        conforming,
        encoding,
        fc.constantFrom('application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/json;charset=UTF-8'),
        fc.option(fc.string({ unit: fc.constantFrom(...' !"#$%&\'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~'.split('')), minLength: 1, maxLength: 200 }).map((k) => k.trim()).filter((k) => k.length > 0)),
        async (body, how, type, key) => {
          const before = s.rows();
          const headers: Record<string, string> = { 'content-type': type };
          if (key !== null) headers['idempotency-key'] = `${++keySeq}:${key}`.slice(0, 255);
          const res = await post(s, encode(body, how), headers);
          assert.equal(res.statusCode, 202, res.payload);
          const { request_id } = JSON.parse(res.payload) as { request_id: string };
          assert.deepEqual(storedRow(s, request_id), { ...body, state: 'queued' });
          assert.equal(s.rows(), before + (key === null ? 1 : 2));
        },
      ),
      runs(150),
    );
  });

  it('a request with a missing, malformed or unknown field is a 400 naming it, and writes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (muts) => {
        const text = withMutations(GOOD, muts);
        const body = await refused(s, 400, () => post(s, text), text.slice(0, 300));
        const named = new Set(body.errors.map((e) => e.field));
        // An unpaired surrogate or a "__proto__" member is refused for the body as a whole.
        if (!named.has('body')) {
          const last = new Map(muts.map((m) => [m.field, m]));
          for (const m of last.values()) assert.ok(named.has(m.field), `${m.field} named in ${JSON.stringify(body.errors)}`);
        }
      }),
      runs(300),
    );
  });

  it('a JSON value that is not an object is a 400 for the body', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue().filter((v) => v === null || typeof v !== 'object' || Array.isArray(v)), async (v) => {
        const body = await refused(s, 400, () => post(s, JSON.stringify(v)), JSON.stringify(v).slice(0, 200));
        assert.deepEqual(body.errors.map((e) => e.field), ['body']);
      }),
      runs(100),
    );
  });

  it('arbitrary bytes, or a valid body with bytes flipped, inserted or cut: 202 only when it still conforms, never a 500', async () => {
    // A long free-text path: most flipped bytes land where the value stays a valid URL, so
    // the property sees accepting cases, invalid UTF-8 inside a string among them.
    const valid = Buffer.from(JSON.stringify({ ...GOOD, callback_url: 'http://127.0.0.1:9/api/callbacks/charge-result/site-7/bay-12/with/a/longer/path' }));
    const mangled = fc
      .array(fc.tuple(fc.constantFrom('flip', 'insert', 'cut'), fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 })
      .map((ops) => {
        let b = Buffer.from(valid);
        for (const [op, at, byte] of ops) {
          const i = at % Math.max(1, b.length);
          if (op === 'flip') b[i] = byte;
          else if (op === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
          else b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
        }
        return new Uint8Array(b);
      });
    let acceptedSome = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 512 }), mangled), async (bytes) => {
        const before = s.rows();
        const res = await post(s, Buffer.from(bytes));
        const context = Buffer.from(bytes).toString('latin1').slice(0, 200);
        const expected = judge(bytes);
        if (res.statusCode === 202) {
          acceptedSome++;
          assert.ok(expected, `accepted a body the SPEC refuses: ${context}`);
          const { request_id } = JSON.parse(res.payload) as { request_id: string };
          assert.deepEqual(storedRow(s, request_id), { ...expected, state: 'queued' });
          return;
        }
        assert.equal(res.statusCode, 400, `${context}: ${res.payload}`);
        assertShape(res.payload, 'invalid', context);
        assert.equal(s.rows(), before, context);
      }),
      runs(400),
    );
    // Some mangled bodies still conform (a token character swapped for another): the
    // accepting side of the property was exercised too.
    assert.ok(acceptedSome > 0, 'no mangled body was accepted: the property only saw refusals');
  });

  it('headers the API does not use change nothing', async () => {
    const reserved = new Set(['content-type', 'content-length', 'transfer-encoding', 'content-encoding', 'idempotency-key', 'host', 'connection', 'expect', 'upgrade', 'te', 'trailer', 'keep-alive']);
    const name = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCXYZ0123456789!#$%&\'*+-.^_`|~'.split('')), minLength: 1, maxLength: 40 }).filter((n) => !reserved.has(n.toLowerCase()));
    const value = fc.string({ unit: fc.constantFrom(...' !"#$%&()*+,/:;<=>?@[]\\^_{|}~azAZ09\t'.split('')), maxLength: 200 }).map((v) => v.trim());
    await fc.assert(
      fc.asyncProperty(fc.dictionary(name, value, { maxKeys: 40 }), async (extra) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(extra)) headers[k.toLowerCase()] = v;
        const res = await post(s, JSON.stringify(GOOD), headers);
        assert.equal(res.statusCode, 202, `${JSON.stringify(extra)}: ${res.payload}`);
      }),
      runs(60),
    );
  });

  it('any media type but application/json is a 415', async () => {
    const token = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789+-.'.split('')), minLength: 1, maxLength: 20 });
    const mediaType = fc
      .tuple(token, token, fc.option(fc.string({ maxLength: 30 })))
      .map(([a, b, p]) => `${a}/${b}${p === null ? '' : `; ${p.replace(/[\r\n]/g, '')}`}`)
      .filter((t) => t.split(';')[0]!.trim().toLowerCase() !== 'application/json');
    await fc.assert(
      fc.asyncProperty(mediaType, async (type) => {
        await refused(s, 415, () => post(s, JSON.stringify(GOOD), { 'content-type': type }), type);
      }),
      runs(100),
    );
  });

  it('an Idempotency-Key outside 1-255 printable ASCII is a 400 naming the header', async () => {
    const key = fc.oneof(
      fc.string({ unit: fc.constantFrom(...'abc~ \u00e9\u00ff\u0080'.split('')), minLength: 1, maxLength: 20 }).filter((k) => /[^\x20-\x7e]/.test(k)),
      fc.string({ unit: fc.constantFrom(...'abcXYZ09-_'.split('')), minLength: 256, maxLength: 400 }),
    );
    await fc.assert(
      fc.asyncProperty(key, async (k) => {
        const body = await refused(s, 400, () => post(s, JSON.stringify(GOOD), { 'idempotency-key': k }), JSON.stringify(k));
        assert.deepEqual(body.errors.map((e) => e.field), ['Idempotency-Key']);
      }),
      runs(60),
    );
  });

  it('random URLs and request ids get 400/404/405 in the error shape, never a 500', async () => {
    const segment = fc.string({ unit: fc.constantFrom(...'abcXYZ019-._~%!$&\'()*+,;=:@'.split('')), maxLength: 40 });
    const url = fc.oneof(
      fc.webPath().map((p) => p || '/'),
      segment.map((x) => `${PATH}/${x}`),
      fc.uuid().map((u) => `${PATH}/${u}`),
      fc.constantFrom(`${PATH}/%E0%A4%A`, `${PATH}/%ZZ`, '/%', `${PATH}/..%2f..%2fetc%2fpasswd`, `${PATH}/${'a'.repeat(5000)}`, `${PATH}?x=%%`),
    );
    await fc.assert(
      fc.asyncProperty(url, fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'), async (u, method) => {
        const before = s.rows();
        const res = await s.app.server.inject({ method, url: u, payload: method === 'GET' ? undefined : '{}', headers: { 'content-type': 'application/json' } });
        assert.ok(res.statusCode < 500, `${method} ${u}: ${res.statusCode} ${res.payload}`);
        if (res.statusCode >= 400) assertShape(res.payload, res.statusCode === 404 ? 'not_found' : 'invalid', `${method} ${u}`);
        assert.equal(s.rows(), before);
      }),
      runs(150),
    );
  });

});

describe('hostile input: bodies', () => {
  const ctx = suiteContext();
  let s: Intake;
  before(async () => {
    s = await startIntake(ctx);
  });
  const send = (text: string | Buffer) => () => post(s, text);

  it('deep nesting and big documents: 400 or 413, quickly', async () => {
    const cases: Array<[string, string, number]> = [
      ['8000 nested arrays', '['.repeat(8000) + ']'.repeat(8000), 400],
      ['2000 nested objects', '{"a":'.repeat(2000) + '1' + '}'.repeat(2000), 400],
      ['a nested object inside a field', JSON.stringify({ ...GOOD, station_id: { a: { b: { c: [1, 2, 3] } } } }), 400],
      ['16 KiB of array elements', JSON.stringify({ ...GOOD, extra: Array.from({ length: 4000 }, () => 1) }), 400],
      ['1 MiB of members', JSON.stringify(Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i]))), 413],
    ];
    for (const [name, text, status] of cases) {
      const t0 = performance.now();
      await refused(s, status, send(text), name);
      assert.ok(performance.now() - t0 < 10_000, `${name} took ${performance.now() - t0} ms`);
    }
  });

  it('duplicate member names are refused, however spelled', async () => {
    const m = (k: string, v: string) => `${k}:${JSON.stringify(v)}`;
    const cases = [
      `{${m('"station_id"', 'not-a-uuid')},${m('"station_id"', GOOD.station_id)},${m('"driver_token"', GOOD.driver_token)},${m('"callback_url"', GOOD.callback_url)}}`,
      `{${m('"station_id"', GOOD.station_id)},${m('"station\\u005fid"', GOOD.station_id)},${m('"driver_token"', GOOD.driver_token)},${m('"callback_url"', GOOD.callback_url)}}`,
      `{${m('"callback_url"', 'http://169.254.169.254/')},${m('"station_id"', GOOD.station_id)},${m('"driver_token"', GOOD.driver_token)},${m('"callback_url"', GOOD.callback_url)}}`,
      `{${m('"station_id"', GOOD.station_id)},${m('"driver_token"', GOOD.driver_token)},${m('"callback_url"', GOOD.callback_url)},"x":{"a":1,"a":2}}`,
    ];
    for (const text of cases) {
      const body = await refused(s, 400, send(text), text);
      assert.deepEqual(body.errors.map((e) => e.field), ['body'], text);
      assert.match(body.message, /more than once/);
    }
  });

  it('"__proto__" members are refused at any depth and in any spelling', async () => {
    const rest = `"station_id":"${GOOD.station_id}","driver_token":"${GOOD.driver_token}","callback_url":"${GOOD.callback_url}"`;
    for (const text of [`{"__proto__":{"admin":true},${rest}}`, `{${rest},"x":{"__proto__":null}}`, `{"__pro\\u0074o__":{},${rest}}`, `{${rest},"y":[{"__proto__":1}]}`]) {
      const body = await refused(s, 400, send(text), text);
      assert.deepEqual(body.errors.map((e) => e.field), ['body'], text);
    }
    assert.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype was touched');
  });

  it('invalid UTF-8 and unpaired surrogates are refused, not repaired into U+FFFD', async () => {
    const json = JSON.stringify({ ...GOOD, callback_url: 'http://127.0.0.1:9/cb-XX' });
    const withBytes = (bytes: number[]) => Buffer.concat([Buffer.from(json.split('XX')[0]!), Buffer.from(bytes), Buffer.from(json.split('XX')[1]!)]);
    const cases: Array<[string, Buffer]> = [
      ['a lone continuation byte', withBytes([0x80])],
      ['0xFF', withBytes([0xff, 0xfe])],
      ['an overlong "/"', withBytes([0xc0, 0xaf])],
      ['a truncated 3-byte sequence', withBytes([0xe2, 0x82])],
      ['a UTF-8 encoded surrogate', withBytes([0xed, 0xa0, 0x80])],
      ['a code point past U+10FFFF', withBytes([0xf4, 0x90, 0x80, 0x80])],
      ['an escaped unpaired surrogate', Buffer.from(json.replace('XX', '\\ud800'))],
      ['an escaped unpaired low surrogate', Buffer.from(json.replace('XX', '\\udc00x'))],
      ['UTF-16', Buffer.from(JSON.stringify(GOOD), 'utf16le')],
    ];
    for (const [name, bytes] of cases) {
      const body = await refused(s, 400, send(bytes), name);
      assert.deepEqual(body.errors.map((e) => e.field), ['body'], name);
    }
    // The same URL with a real (valid UTF-8) non-ASCII character is a conforming request.
    const ok = await post(s, Buffer.from(json.replace('XX', 'é')));
    assert.equal(ok.statusCode, 202, ok.payload);
  });

  it('a gzip bomb is cut at 16 KiB of inflated body (413), a broken gzip stream is a 400', async () => {
    const bomb = gzipSync(Buffer.concat([Buffer.from('{"pad":"'), Buffer.alloc(20 * 1024 * 1024, 0x61), Buffer.from('"}')]));
    assert.ok(bomb.length < 64 * 1024);
    const t0 = performance.now();
    await refused(s, 413, () => post(s, bomb, { 'content-encoding': 'gzip' }), 'gzip bomb');
    assert.ok(performance.now() - t0 < 10_000, 'not inflated to the end');
    await refused(s, 400, () => post(s, Buffer.from('not gzip at all'), { 'content-encoding': 'gzip' }), 'broken gzip');
    const small = await post(s, gzipSync(JSON.stringify(GOOD)), { 'content-encoding': 'gzip' });
    assert.equal(small.statusCode, 202, 'a gzip-encoded conforming body is accepted');
  });

});

describe('hostile input: the connection (raw sockets)', () => {
  const ctx = suiteContext();
  let s: Intake;
  // Short deadlines so slow clients are cut within the test; the shipped values are in
  // HTTP_LIMITS (src/http/server.ts) and the README.
  const limits = { headersTimeoutMs: 1500, requestTimeoutMs: 3000, payloadTimeoutMs: 1500, idleTimeoutMs: 3000, checkIntervalMs: 250 };
  before(async () => {
    s = await startIntake(ctx, { http: limits });
  });
  const goodText = JSON.stringify(GOOD);

  /** One refusal on a raw connection: this status, the shape, the connection closed, no row. */
  async function rawRefused(bytes: Buffer, status: number, name: string, opts: Parameters<typeof raw>[2] = {}) {
    const before = s.rows();
    const r = await raw(s.port, bytes, { timeoutMs: 8000, ...opts });
    assert.deepEqual(r.statuses, [status], `${name}: ${r.text.slice(0, 400)}`);
    assertShape(r.bodies[0], 'invalid', name);
    assert.ok(r.closedByServer, `${name}: the server closes the connection`);
    assert.equal(s.rows(), before, `${name}: nothing written`);
    return r;
  }

  it('a conforming request over a raw socket is accepted (the baseline for what follows), malformed cookies and all', async () => {
    const r = await raw(s.port, rawPost(PATH, ['Content-Type: application/json', `Content-Length: ${goodText.length}`, 'Connection: close'], goodText));
    assert.deepEqual(r.statuses, [202]);
    const c = await raw(s.port, rawPost(PATH, ['Content-Type: application/json', 'Cookie: =;;a=%%; b="', `Content-Length: ${goodText.length}`, 'Connection: close'], goodText));
    assert.deepEqual(c.statuses, [202], 'a Cookie header the API does not use cannot fail a request');
  });

  it('request smuggling: conflicting or obfuscated framing is a 400 and the hidden request never runs', async () => {
    // The inner request is a conforming POST: if any front/back framing disagreement let it
    // through, it would be accepted and leave a row.
    const inner = `POST ${PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${goodText.length}\r\n\r\n${goodText}`;
    const chunked = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n0\r\n\r\n`;
    const cases: Array<[string, string[], string]> = [
      ['CL.TE', [`Content-Length: ${('0\r\n\r\n' + inner).length}`, 'Transfer-Encoding: chunked'], '0\r\n\r\n' + inner],
      ['TE.CL', ['Transfer-Encoding: chunked', 'Content-Length: 4'], chunked(inner)],
      ['TE.TE (xchunked)', ['Transfer-Encoding: xchunked', `Content-Length: ${inner.length}`], inner],
      ['TE with a space before the colon', ['Transfer-Encoding : chunked', 'Content-Length: 5'], '0\r\n\r\n' + inner],
      ['TE chunked, identity', ['Transfer-Encoding: chunked, identity'], chunked(inner)],
      ['TE with a vertical tab', ['Transfer-Encoding:\x0bchunked'], chunked(inner)],
      ['two different Content-Lengths', ['Content-Length: 2', `Content-Length: ${inner.length + 2}`], '{}' + inner],
      ['Content-Length: +2', ['Content-Length: +2'], '{}' + inner],
      ['Content-Length: 1,1', ['Content-Length: 2,2'], '{}' + inner],
      ['a negative Content-Length', ['Content-Length: -1'], inner],
      ['obs-fold continuation of Transfer-Encoding', ['Transfer-Encoding: identity', ' chunked'], chunked(inner)],
      ['a bad chunk size', ['Transfer-Encoding: chunked'], 'zz\r\n' + inner],
    ];
    for (const [name, headers, body] of cases) {
      await rawRefused(rawPost(PATH, ['Content-Type: application/json', ...headers], body), 400, name);
    }
  });

  it('bare LF line endings and NUL bytes in headers are a 400', async () => {
    await rawRefused(Buffer.from(`POST ${PATH} HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: ${goodText.length}\n\n${goodText}`), 400, 'bare LF');
    await rawRefused(rawPost(PATH, ['Content-Type: application/json\x00', `Content-Length: ${goodText.length}`], goodText), 400, 'NUL in a header');
  });

  it('a header flood is a 431 in the error shape, before any body is read', async () => {
    const many = Array.from({ length: 3000 }, (_, i) => `X-Flood-${i}: ${'v'.repeat(16)}`);
    await rawRefused(rawPost(PATH, ['Content-Type: application/json', ...many, `Content-Length: ${goodText.length}`], goodText), 431, '3000 headers');
    await rawRefused(rawPost(PATH, ['Content-Type: application/json', `X-Big: ${'b'.repeat(20_000)}`, `Content-Length: ${goodText.length}`], goodText), 431, 'one 20 KB header');
    await rawRefused(rawPost(`${PATH}?${'q'.repeat(20_000)}`, ['Content-Type: application/json', `Content-Length: ${goodText.length}`], goodText), 431, 'a 20 KB URL');
  });

  it('a pipelined conforming request is answered before the malformed one behind it is refused', async () => {
    const before = s.rows();
    const first = rawPost(PATH, ['Content-Type: application/json', `Content-Length: ${goodText.length}`], goodText);
    const second = rawPost(PATH, ['Content-Type: application/json', 'Content-Length: 2', 'Transfer-Encoding: chunked'], '0\r\n\r\n');
    const r = await raw(s.port, Buffer.concat([first, second]), { timeoutMs: 5000 });
    assert.deepEqual(r.statuses, [202, 400], r.text.slice(0, 600));
    assert.ok(r.closedByServer);
    assert.equal(s.rows(), before + 1);
  });

  it('Expect: 100-continue with an oversized Content-Length is a 413 without the body being sent', async () => {
    const r = await rawRefused(rawPost(PATH, ['Content-Type: application/json', 'Content-Length: 10485760', 'Expect: 100-continue']), 413, 'expect 100-continue');
    assert.doesNotMatch(r.text, /100 Continue/);
  });

  it('slowloris: headers or a body that drip in are cut off with a 408, and other clients are served meanwhile', async (t) => {
    const head = rawPost(PATH, ['Content-Type: application/json', `Content-Length: ${goodText.length}`], '').toString('latin1');
    const dripHeaders = head.split('').map((c) => c);
    const dripBody = [head, ...goodText.split('')];
    const slow = [
      ...Array.from({ length: 40 }, () => raw(s.port, Buffer.alloc(0), { chunks: dripHeaders, pauseMs: 200, timeoutMs: 10_000 })),
      ...Array.from({ length: 40 }, () => raw(s.port, Buffer.alloc(0), { chunks: dripBody, pauseMs: 200, timeoutMs: 10_000 })),
    ];
    // While 80 connections drip, conforming requests are answered at once.
    const served: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const res = await raw(s.port, rawPost(PATH, ['Content-Type: application/json', `Content-Length: ${goodText.length}`, 'Connection: close'], goodText));
      assert.deepEqual(res.statuses, [202]);
      served.push(performance.now() - t0);
    }
    const results = await Promise.all(slow);
    for (const [i, r] of results.entries()) {
      const what = i < 40 ? 'dripping headers' : 'dripping body';
      assert.ok(r.closedByServer, `${what}: the server closed the connection`);
      assert.deepEqual(r.statuses, [408], `${what}: ${r.text.slice(0, 300)}`);
      assertShape(r.bodies[0], 'invalid', what);
      // Cut at its deadline (plus the check interval), long before it would have finished.
      // (Hapi reads a body that broke its own payload timeout to the end before answering,
      // so a dripping body is cut by the listener's whole-request deadline.)
      const deadline = i < 40 ? limits.headersTimeoutMs : limits.requestTimeoutMs;
      assert.ok(r.ms < deadline + 2000, `${what}: closed after ${r.ms} ms`);
    }
    const worst = Math.max(...served);
    t.diagnostic(`slowloris: 80 dripping connections cut at ${Math.max(...results.slice(0, 40).map((r) => r.ms))} ms (headers) / ${Math.max(...results.slice(40).map((r) => r.ms))} ms (body); conforming requests meanwhile max ${worst.toFixed(0)} ms`);
    assert.ok(worst < 1000, `a conforming request took ${worst} ms while slow clients dripped`);
  });

});
