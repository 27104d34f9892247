import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { hashToken } from '../src/core/token.ts';
import { openDb } from '../src/queue/db.ts';
import { migrate } from '../src/queue/migrate.ts';
import { MIGRATIONS } from '../src/queue/schema.ts';
import { decide } from '../workers/decide.ts';
import { startApp } from './support/app.ts';
import { ocpiInfo, startAuthority } from './support/authority.ts';
import { cli } from './support/cli.ts';
import { startReceiver } from './support/receiver.ts';
import { tempDir, waitFor } from './support/tmp.ts';

// OCPI token types (SPEC §1 token_type): accepted and defaulted, stored, shown, sent to
// the OCPI authorizer, part of the cache key, and a possible limit on ACL entries. The
// callback body does not change.

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const OCPI_CREDENTIALS = 'b2NwaS1jcmVkZW50aWFscw==';

const post = (base: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`${base}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

describe('token_type', () => {
  it('is RFID by default, refused when not an OCPI type, and part of the idempotent body', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const { base } = await startApp(t);
    const body = { station_id: S1, driver_token: TOKEN, callback_url: rx.url() };

    const bad = await post(base, { ...body, token_type: 'rfid' });
    assert.equal(bad.status, 400);
    const err = (await bad.json()) as { status: string; errors: Array<{ field: string; message: string }> };
    assert.equal(err.status, 'invalid');
    assert.deepEqual(err.errors, [{ field: 'token_type', message: 'must be one of RFID, APP_USER, AD_HOC_USER, OTHER' }]);
    assert.equal((await post(base, { ...body, token_type: 7 })).status, 400);

    const plain = (await (await post(base, body)).json()) as { request_id: string };
    const view = (await (await fetch(`${base}/api/v1/charging-session/${plain.request_id}`)).json()) as { token_type: string };
    assert.equal(view.token_type, 'RFID');

    // Naming the default is the same body as naming nothing; another type is not.
    const key = { 'idempotency-key': 'k-1' };
    const first = (await (await post(base, body, key)).json()) as { request_id: string };
    const same = await post(base, { ...body, token_type: 'RFID' }, key);
    assert.equal(same.status, 202);
    assert.equal(((await same.json()) as { request_id: string }).request_id, first.request_id);
    assert.equal((await post(base, { ...body, token_type: 'APP_USER' }, key)).status, 422);
  });

  it('goes to the OCPI authorizer as ?type=, keys the cache, shows in reads and leaves the callback body alone', async (t) => {
    const authority = await startAuthority(() => ({ status: 200, json: ocpiInfo('ALLOWED') }));
    t.after(() => authority.close());
    const rx = await startReceiver();
    t.after(rx.close);
    const { base, config } = await startApp(t, {
      AUTHORIZER_URL: authority.url('/ocpi/tokens'),
      AUTHORIZER_PROTOCOL: 'ocpi',
      AUTHORIZER_TOKEN: OCPI_CREDENTIALS,
    });
    const send = async (token_type?: string) => {
      const res = await post(base, { station_id: S1, driver_token: TOKEN, callback_url: rx.url(), ...(token_type ? { token_type } : {}) });
      assert.equal(res.status, 202);
      const { request_id: id } = (await res.json()) as { request_id: string };
      await waitFor(() => rx.callsFor(id).length === 1, { what: `callback of ${token_type ?? 'default'}` });
      return id;
    };

    const app1 = await send('APP_USER');
    assert.equal(authority.calls.length, 1);
    assert.equal(authority.calls[0]!.path, `/ocpi/tokens/${encodeURIComponent(TOKEN)}/authorize?type=APP_USER`);
    // The same uid as a card is another credential: asked again, not answered from the cache.
    await send();
    assert.equal(authority.calls.length, 2);
    assert.equal(authority.calls[1]!.path, `/ocpi/tokens/${encodeURIComponent(TOKEN)}/authorize?type=RFID`);
    // Both answers are cached now, each under its type.
    await send('APP_USER');
    await send('RFID');
    assert.equal(authority.calls.length, 2, 'third and fourth decided from the cache');

    const [cb] = rx.callsFor(app1);
    assert.deepEqual(Object.keys(cb!.json!), ['station_id', 'driver_token', 'status'], 'callback body as SPEC §2');
    const view = (await (await fetch(`${base}/api/v1/charging-session/${app1}`)).json()) as { token_type: string; decision: { source: string } };
    assert.equal(view.token_type, 'APP_USER');
    assert.equal(view.decision.source, 'upstream');

    const db = new Database(config.dbPath, { readonly: true });
    t.after(() => db.close());
    const types = db.prepare('SELECT token_type FROM authorizer_cache WHERE token_hash = ? ORDER BY token_type').pluck().all(hashToken(TOKEN));
    assert.deepEqual(types, ['APP_USER', 'RFID']);

    const shown = await cli(['requests', 'show', app1, '--db', config.dbPath]);
    assert.match(shown.out, /token_type\s+APP_USER/);
    const json = JSON.parse((await cli(['requests', 'show', app1, '--json', '--db', config.dbPath])).out);
    assert.equal(json.token_type, 'APP_USER');
  });

  it('limits an ACL entry to a type (CLI flag and CSV column); no limit matches any type', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'acl.db');
    const db = ['--db', path];
    const app = `app-only-${'0'.repeat(20)}`;
    const card = `card-only-${'0'.repeat(20)}`;
    const any = `any-type-${'0'.repeat(20)}`;
    assert.equal((await cli(['acl', 'add', app, '--token-type', 'app_user', ...db])).code, 0);
    assert.equal((await cli(['acl', 'add', any, '--token-type', 'CARD', ...db])).code, 2, 'not an OCPI type');
    const csv = join(dir, 'acl.csv');
    writeFileSync(csv, `token,stations,token_type\n${card},,RFID\n${any},,\n`);
    assert.equal((await cli(['acl', 'import', csv, ...db])).code, 0);
    writeFileSync(csv, `token,token_type\n${card},BADGE\n`);
    const badCsv = await cli(['acl', 'import', csv, ...db]);
    assert.equal(badCsv.code, 2);
    assert.match(badCsv.err, /line 2: invalid token type "BADGE"/);

    const listed = JSON.parse((await cli(['acl', 'effective', '--json', '--full', ...db])).out) as Array<{ token: string; token_type: string }>;
    assert.deepEqual(Object.fromEntries(listed.map((r) => [r.token, r.token_type])), { [app]: 'APP_USER', [card]: 'RFID', [any]: '*' });

    const verdict = (driver_token: string, token_type: 'RFID' | 'APP_USER' | 'OTHER') => {
      const [d] = decide({ dbPath: path, now: Date.now(), items: [{ id: 'x', station_id: S1, driver_token, token_type }] })!;
      return `${d!.status}/${d!.reason}`;
    };
    assert.equal(verdict(app, 'APP_USER'), 'allowed/acl_match');
    assert.equal(verdict(app, 'RFID'), 'not_allowed/token_type_not_permitted');
    assert.equal(verdict(card, 'RFID'), 'allowed/acl_match');
    assert.equal(verdict(card, 'OTHER'), 'not_allowed/token_type_not_permitted');
    assert.equal(verdict(any, 'OTHER'), 'allowed/acl_match');
    // With an upstream, an entry of another type does not decide: the upstream is asked.
    const [referred] = decide({
      dbPath: path, now: Date.now(), items: [{ id: 'x', station_id: S1, driver_token: app, token_type: 'RFID' }],
      authorizer: { offlineCacheMaxAgeMs: 1000 },
    })!;
    assert.equal(referred!.reason, 'referred');
  });

  it('migrates a file from before token types: requests and cached answers become RFID', (t) => {
    const path = join(tempDir(t), 'old.db');
    const db = openDb(path, { busyTimeoutMs: 1000 });
    t.after(() => db.close());
    const typed = MIGRATIONS.find((m) => m.name.startsWith('OCPI token types'))!;
    db.function('cg_origin', { deterministic: true }, (url: unknown) => new URL(String(url)).origin);
    db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT');
    for (const m of MIGRATIONS.filter((x) => x.version < typed.version)) {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, 'x');
    }
    db.prepare(`INSERT INTO charging_requests (id, station_id, driver_token, token_hash, token_mask, callback_url, origin, state,
      created_at, updated_at, due_at) VALUES ('r1', ?, ?, 'h', 'm', 'http://a/cb', 'http://a', 'queued', 1, 1, 1)`).run(S1, TOKEN);
    db.prepare(`INSERT INTO authorizer_cache (token_hash, station_id, status, reason, stored_at, fresh_until, last_used_at)
      VALUES ('h', ?, 'allowed', 'allowed', 1, 2, 3)`).run(S1);
    db.prepare('INSERT INTO acl (token) VALUES (?)').run(TOKEN);

    migrate(db);
    assert.equal(db.prepare("SELECT token_type FROM charging_requests WHERE id = 'r1'").pluck().get(), 'RFID');
    assert.equal(db.prepare('SELECT token_type FROM requests_readable').pluck().get(), 'RFID');
    assert.deepEqual(db.prepare('SELECT token_hash, token_type, station_id, status FROM authorizer_cache_readable').get(), {
      token_hash: 'h', token_type: 'RFID', station_id: S1, status: 'allowed',
    });
    assert.equal(db.prepare('SELECT token_type FROM acl').pluck().get(), null, 'existing entries: any type');
  });
});
