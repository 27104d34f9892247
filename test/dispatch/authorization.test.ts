import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { aclAdd } from '../../src/cli/acl.ts';
import { runCli } from '../../src/cli/main.ts';
import { hashToken } from '../../src/core/token.ts';
import { openDb } from '../../src/queue/db.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { startApp } from '../support/app.ts';
import { startAuthority, type Script } from '../support/authority.ts';
import { startReceiver, type Receiver } from '../support/receiver.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

// The whole chain in the running service (real worker threads, real SQLite, a real fake
// authority on port 0): the source and reason of every decision, the cache surviving a
// restart, the offline rules, the breaker, unknown tokens, and local decisions not
// waiting behind upstream calls.

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const tok = (name: string) => `${name}-token-0123456789abcdef`;

function admin(path: string) {
  const db = openDb(path, { busyTimeoutMs: 5000 });
  migrate(db);
  return db;
}

const entry = (token: string, extra: object = {}) => ({ token, stations: [], expires_at: null, blocked: false, note: null, ...extra });

async function post(base: string, token: string, callback: string): Promise<string> {
  const res = await fetch(`${base}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ station_id: S1, driver_token: token, callback_url: callback }),
  });
  assert.equal(res.status, 202);
  return ((await res.json()) as { request_id: string }).request_id;
}

function decision(path: string, id: string) {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT decision_status AS status, decision_reason AS reason, decision_source AS source FROM charging_requests WHERE id = ?').get(id) as
      | { status: string; reason: string; source: string }
      | undefined;
  } finally {
    db.close();
  }
}

const brief = (d: { status: string; reason: string; source: string } | undefined) => (d ? `${d.status}/${d.reason}/${d.source}` : 'undecided');

async function decided(rx: Receiver, path: string, id: string) {
  await waitFor(() => rx.callsFor(id).length > 0, { what: `callback of ${id}` });
  return brief(decision(path, id));
}

/** An authority that answers by token: allowed / denied / unknown / hanging / 500. */
const byToken: Script = (call) => {
  const t = String(call.json?.driver_token ?? '');
  if (t.startsWith('up-ok')) return { status: 200, json: { status: 'allowed', reason: 'contract_ok' } };
  if (t.startsWith('up-no')) return { status: 200, json: { status: 'not_allowed', reason: 'no_credit' } };
  if (t.startsWith('up-unknown')) return { status: 200, json: { status: 'not_allowed', reason: 'unknown_token' } };
  if (t.startsWith('up-hang')) return { hang: true };
  return { status: 500 };
};

describe('authorization chain in the service', () => {
  it('records the source and reason of local, upstream, cached and offline decisions', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const a = await startAuthority(byToken);
    t.after(a.close);
    // Long enough that a loaded machine never turns a prompt answer into a timeout.
    const { base, config } = await startApp(t, { AUTHORIZER_URL: a.url(), AUTHORIZATION_TIMEOUT_MS: '2500' });
    const db = admin(config.dbPath);
    aclAdd(db, entry(tok('local')));
    aclAdd(db, entry(tok('blocked'), { blocked: true }));
    aclAdd(db, entry(tok('up-hang-offline'), { allow_offline: true }));
    db.close();

    const cases: Array<[string, string]> = [
      [tok('local'), 'allowed/acl_match/local_list'],
      [tok('blocked'), 'not_allowed/blocked/local_list'],
      [tok('up-ok'), 'allowed/contract_ok/upstream'],
      [tok('up-no'), 'not_allowed/no_credit/upstream'],
      [tok('up-hang'), 'unknown/timeout/offline_rule'],
      [tok('up-hang-offline'), 'allowed/allow_offline/offline_rule'],
      [tok('up-500'), 'unknown/upstream_error/offline_rule'],
    ];
    const ids = await Promise.all(cases.map(([token]) => post(base, token, rx.url())));
    for (let i = 0; i < cases.length; i++) assert.equal(await decided(rx, config.dbPath, ids[i]!), cases[i]![1], cases[i]![0]);
    assert.equal(rx.callsFor(ids[4]!)[0]!.json!.status, 'unknown', 'a timeout is delivered as unknown');

    // Asked again: the upstream answers come from the cache, the authority is not called.
    const calls = a.calls.length;
    const again = await post(base, tok('up-ok'), rx.url());
    assert.equal(await decided(rx, config.dbPath, again), 'allowed/contract_ok/cache');
    const againNo = await post(base, tok('up-no'), rx.url());
    assert.equal(await decided(rx, config.dbPath, againNo), 'not_allowed/no_credit/cache');
    assert.equal(a.calls.length, calls);
  });

  it('cached answers survive a restart (hashed), and a stale allowed decides while the upstream is down', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const a = await startAuthority(byToken);
    t.after(a.close);
    const dbPath = join(tempDir(t), 'restart.db');
    const first = await startApp(t, { DB_PATH: dbPath, AUTHORIZER_URL: a.url() });
    const id1 = await post(first.base, tok('up-ok-restart'), rx.url());
    assert.equal(await decided(rx, dbPath, id1), 'allowed/contract_ok/upstream');
    await first.app.stop();

    const raw = new Database(dbPath, { readonly: true });
    const row = raw.prepare('SELECT token_hash, status FROM authorizer_cache').get() as { token_hash: string; status: string };
    raw.close();
    assert.deepEqual(row, { token_hash: hashToken(tok('up-ok-restart')), status: 'allowed' });

    const calls = a.calls.length;
    const second = await startApp(t, { DB_PATH: dbPath, AUTHORIZER_URL: a.url() });
    const id2 = await post(second.base, tok('up-ok-restart'), rx.url());
    assert.equal(await decided(rx, dbPath, id2), 'allowed/contract_ok/cache');
    assert.equal(a.calls.length, calls, 'the restarted service did not ask upstream');
    await second.app.stop();

    // The answer is stale (TTL 0 now) and the authority is gone: the offline rule allows.
    const dead = await startAuthority(() => ({ status: 200 }));
    const deadUrl = dead.url();
    await dead.close();
    const third = await startApp(t, { DB_PATH: dbPath, AUTHORIZER_URL: deadUrl, AUTHORIZER_CACHE_TTL_S: '0' });
    const db = admin(dbPath);
    db.prepare('UPDATE authorizer_cache SET fresh_until = stored_at').run();
    db.close();
    const id3 = await post(third.base, tok('up-ok-restart'), rx.url());
    assert.equal(await decided(rx, dbPath, id3), 'allowed/cached_allowed/offline_rule');
  });

  it('OFFLINE_ALLOW_UNKNOWN=true lets unknown tokens through only while the upstream cannot answer', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const a = await startAuthority(byToken);
    t.after(a.close);
    const { base, config } = await startApp(t, { AUTHORIZER_URL: a.url(), OFFLINE_ALLOW_UNKNOWN: 'true' });
    const db = admin(config.dbPath);
    aclAdd(db, entry(tok('up-500-listed'), { stations: ['9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab'] }));
    db.close();
    const down = await post(base, tok('up-500-stranger'), rx.url());
    const listed = await post(base, tok('up-500-listed'), rx.url());
    const refused = await post(base, tok('up-unknown'), rx.url());
    assert.equal(await decided(rx, config.dbPath, down), 'allowed/allow_unknown/offline_rule');
    assert.equal(await decided(rx, config.dbPath, listed), 'unknown/upstream_error/offline_rule', 'a listed token is not unknown');
    assert.equal(await decided(rx, config.dbPath, refused), 'not_allowed/unknown_token/upstream', 'an upstream that answers is obeyed');
  });

  it('the breaker opens after AUTHORIZER_BREAKER_FAILURES and decisions stop waiting for the upstream', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const a = await startAuthority(() => ({ status: 500 }));
    t.after(a.close);
    const { base, config } = await startApp(t, { AUTHORIZER_URL: a.url(), AUTHORIZER_BREAKER_FAILURES: '2', AUTHORIZER_BREAKER_OPEN_MS: '600000' });
    for (const name of ['up-500-a', 'up-500-b']) {
      const id = await post(base, tok(name), rx.url());
      assert.equal(await decided(rx, config.dbPath, id), 'unknown/upstream_error/offline_rule');
    }
    const id = await post(base, tok('up-500-c'), rx.url());
    assert.equal(await decided(rx, config.dbPath, id), 'unknown/circuit_open/offline_rule');
    assert.equal(a.calls.length, 2);
  });

  it('a local decision is delivered while an upstream call of the same batch is still pending', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const a = await startAuthority(() => ({ held: true, then: { status: 200, json: { status: 'allowed' } } }));
    t.after(a.close);
    const { base, config } = await startApp(t, { AUTHORIZER_URL: a.url(), AUTHORIZATION_TIMEOUT_MS: '60000', WORKERS: '1' });
    const db = admin(config.dbPath);
    aclAdd(db, entry(tok('local-fast')));
    db.close();
    const [slow, fast] = await Promise.all([post(base, tok('held-upstream'), rx.url()), post(base, tok('local-fast'), rx.url())]);
    await waitFor(() => rx.callsFor(fast).length === 1, { what: 'the local decision' });
    assert.equal(a.held, 1, 'the upstream call is still held');
    assert.equal(rx.callsFor(slow).length, 0);
    a.release();
    assert.equal(await decided(rx, config.dbPath, slow), 'allowed/allowed/upstream');
  });

  it('unknown tokens are listed for the admin (masked, hashed, counted) and leave the list once added', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const { base, config } = await startApp(t);
    const stranger = tok('tapped-card');
    for (let i = 0; i < 2; i++) {
      const id = await post(base, stranger, rx.url());
      assert.equal(await decided(rx, config.dbPath, id), 'not_allowed/unknown_token/local_list');
    }
    let out = '';
    const io = { env: {}, out: (s: string) => void (out += s), err: () => undefined };
    process.exitCode = undefined;
    assert.equal(await runCli(['acl', 'unknown', '--json', '--db', config.dbPath], io, '0'), 0);
    const rows = JSON.parse(out) as Array<Record<string, unknown>>;
    assert.equal(rows.length, 1);
    assert.deepEqual(
      { token: rows[0]!.token, hash: rows[0]!.token_hash, station: rows[0]!.station_id, count: rows[0]!.count, last: rows[0]!.last_decision },
      { token: 'tapp…cdef', hash: hashToken(stranger), station: S1, count: 2, last: 'not_allowed/unknown_token' },
    );
    assert.ok(!out.includes(stranger));
    assert.equal(await runCli(['acl', 'add', stranger, '--db', config.dbPath], io, '0'), 0);
    out = '';
    await runCli(['acl', 'unknown', '--json', '--db', config.dbPath], io, '0');
    assert.deepEqual(JSON.parse(out), []);
    process.exitCode = undefined;
  });
});
