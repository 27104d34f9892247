import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { aclAdd, type AclEntry } from '../../src/cli/acl.ts';
import { groupAdd, type GroupEntry } from '../../src/cli/groups.ts';
import { hashToken } from '../../src/core/token.ts';
import type { Decision } from '../../src/core/types.ts';
import { openDb, type Db } from '../../src/queue/db.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { offlineDecision } from '../../workers/authorize/offline.ts';
import { decide } from '../../workers/decide.ts';
import { item } from '../support/authorize.ts';
import { tempDir } from '../support/tmp.ts';

// The first step of the chain (workers/decide.ts): the local list with groups, validity
// windows, station scopes and allow_offline, then the authorizer cache; what neither
// decides is referred with the offline rule that would apply. Real SQLite file.

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const S2 = '9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab';
const tok = (name: string) => `${name}-token-0123456789abcdef`;
const PAST = '2020-01-01T00:00:00.000Z';
const FUTURE = '2999-01-01T00:00:00.000Z';
const HOUR = 3_600_000;

function setup(t: { after: (fn: () => void) => void }) {
  const path = join(tempDir(t), 'chain.db');
  const db = openDb(path, { busyTimeoutMs: 1000 });
  migrate(db);
  t.after(() => db.close());
  const entry = (name: string, extra: Partial<AclEntry> = {}) => aclAdd(db, { token: tok(name), stations: [], expires_at: null, blocked: false, note: null, ...extra });
  const group = (name: string, extra: Partial<GroupEntry> = {}) =>
    groupAdd(db, { name, stations: [], blocked: false, valid_from: null, expires_at: null, allow_offline: false, note: null, ...extra });
  const run = (token: string, opts: { station?: string; upstream?: boolean; now?: number } = {}): Decision => {
    const [d] = decide({
      dbPath: path,
      now: opts.now ?? Date.now(),
      items: [{ id: 'x', station_id: opts.station ?? S1, driver_token: token, token_type: 'RFID' as const }],
      authorizer: opts.upstream === false ? undefined : { offlineCacheMaxAgeMs: 24 * HOUR },
    })!;
    return d!;
  };
  return { db, path, entry, group, run };
}

function cache(db: Db, token: string, status: 'allowed' | 'not_allowed', reason: string, storedAt: number, freshUntil: number, station = S1) {
  db.prepare(`INSERT INTO authorizer_cache (token_hash, token_type, station_id, status, reason, stored_at, fresh_until, last_used_at)
    VALUES (?, 'RFID', ?, ?, ?, ?, ?, ?)`).run(hashToken(token), station, status, reason, storedAt, freshUntil, storedAt);
}

const brief = (d: Decision) => (d.referral ? `refer:${d.referral.offline}${d.referral.listed ? ':listed' : ''}` : `${d.status}/${d.reason}/${d.source}`);

describe('local list with groups (step 1)', () => {
  it('every local rule, with and without an upstream authorizer', (t) => {
    const { entry, group, run } = setup(t);
    group('fleet', { stations: [S1, S2] });
    group('gblocked', { blocked: true });
    group('gexpired', { expires_at: PAST });
    group('gfuture', { valid_from: FUTURE });
    group('gbay2', { stations: [S2] });
    group('goffline', { allow_offline: true });
    entry('plain');
    entry('blocked', { blocked: true });
    entry('expired', { expires_at: PAST });
    entry('notyet', { valid_from: FUTURE });
    entry('started', { valid_from: PAST, expires_at: FUTURE });
    entry('scoped', { stations: [S2] });
    entry('member', { group: 'fleet' });
    entry('inblocked', { group: 'gblocked' });
    entry('inexpired', { group: 'gexpired' });
    entry('infuture', { group: 'gfuture' });
    entry('narrowed', { group: 'gbay2', stations: [S1] }); // token scope ∩ group scope = nothing
    entry('offline', { allow_offline: true });
    entry('offscope', { allow_offline: true, stations: [S2] });
    entry('ingoffline', { group: 'goffline' });
    entry('blockedwins', { blocked: true, allow_offline: true, group: 'fleet' });

    const rows: Array<[string, string, string]> = [
      // token, with upstream, local list only
      ['plain', 'allowed/acl_match/local_list', 'allowed/acl_match/local_list'],
      ['blocked', 'not_allowed/blocked/local_list', 'not_allowed/blocked/local_list'],
      ['expired', 'not_allowed/expired/local_list', 'not_allowed/expired/local_list'],
      ['notyet', 'refer:none:listed', 'not_allowed/not_yet_valid/local_list'],
      ['started', 'allowed/acl_match/local_list', 'allowed/acl_match/local_list'],
      ['scoped', 'refer:none:listed', 'not_allowed/station_not_permitted/local_list'],
      ['member', 'allowed/acl_match/local_list', 'allowed/acl_match/local_list'],
      ['inblocked', 'not_allowed/group_blocked/local_list', 'not_allowed/group_blocked/local_list'],
      ['inexpired', 'not_allowed/group_expired/local_list', 'not_allowed/group_expired/local_list'],
      ['infuture', 'refer:none:listed', 'not_allowed/group_not_yet_valid/local_list'],
      ['narrowed', 'refer:none:listed', 'not_allowed/station_not_permitted/local_list'],
      ['offline', 'refer:allow_offline:listed', 'allowed/acl_match/local_list'],
      ['offscope', 'refer:none:listed', 'not_allowed/station_not_permitted/local_list'],
      ['ingoffline', 'refer:allow_offline:listed', 'allowed/acl_match/local_list'],
      ['blockedwins', 'not_allowed/blocked/local_list', 'not_allowed/blocked/local_list'],
      ['nobody', 'refer:unknown_token', 'not_allowed/unknown_token/local_list'],
    ];
    for (const [name, withUpstream, localOnly] of rows) {
      assert.equal(brief(run(tok(name))), withUpstream, `${name} with an upstream`);
      assert.equal(brief(run(tok(name), { upstream: false })), localOnly, `${name}, local list only`);
    }
    assert.equal(brief(run(tok('narrowed'), { station: S2, upstream: false })), 'not_allowed/station_not_permitted/local_list');
    assert.equal(brief(run(tok('member'), { station: '00000000-0000-4000-8000-000000000000', upstream: false })), 'not_allowed/station_not_permitted/local_list', 'the group scope applies');
    assert.equal(brief(run(tok('scoped'), { station: S2.toUpperCase() })), 'allowed/acl_match/local_list');
  });

  it('an unknown token refused by the local list is flagged for the unknown-token list; a listed one is not', (t) => {
    const { entry, run } = setup(t);
    entry('scoped', { stations: [S2] });
    assert.equal(run(tok('nobody'), { upstream: false }).unknown_token, true);
    assert.equal(run(tok('scoped'), { upstream: false }).unknown_token, undefined);
  });

  it('acl_effective shows the state the decision applies', (t) => {
    const { db, entry, group } = setup(t);
    group('fleet', { stations: [S1, S2] });
    group('gblocked', { blocked: true });
    group('gexpired', { expires_at: PAST, allow_offline: true });
    entry('plain');
    entry('blocked', { blocked: true, group: 'fleet' });
    entry('inblocked', { group: 'gblocked' });
    entry('inexpired', { group: 'gexpired', expires_at: FUTURE });
    entry('notyet', { valid_from: FUTURE });
    entry('narrowed', { group: 'fleet', stations: [S2, '00000000-0000-4000-8000-000000000000'] });
    const rows = db.prepare('SELECT token, state, stations, expires_at, allow_offline FROM acl_effective ORDER BY token').all() as Array<Record<string, unknown>>;
    const by = new Map(rows.map((r) => [String(r.token).split('-')[0], r]));
    assert.deepEqual(by.get('plain'), { token: tok('plain'), state: 'active', stations: '*', expires_at: null, allow_offline: 0 });
    assert.equal(by.get('blocked')!.state, 'blocked');
    assert.equal(by.get('inblocked')!.state, 'group_blocked');
    assert.deepEqual([by.get('inexpired')!.state, by.get('inexpired')!.expires_at, by.get('inexpired')!.allow_offline], ['group_expired', PAST, 1], 'the earlier expiry rules');
    assert.equal(by.get('notyet')!.state, 'not_yet_valid');
    assert.equal(by.get('narrowed')!.stations, S2, 'token scope ∩ group scope');
  });
});

describe('authorizer cache (step 2)', () => {
  it('a fresh answer decides (source cache); a stale one only informs the offline rules', (t) => {
    const { db, entry, run } = setup(t);
    const now = Date.now();
    entry('offline', { allow_offline: true });
    cache(db, tok('fresh-ok'), 'allowed', 'allowed', now - 1000, now + 1000);
    cache(db, tok('fresh-no'), 'not_allowed', 'no_credit', now - 1000, now + 1000);
    cache(db, tok('fresh-unknown'), 'not_allowed', 'unknown_token', now - 1000, now + 1000);
    cache(db, tok('stale-ok'), 'allowed', 'allowed', now - 2 * HOUR, now - HOUR);
    cache(db, tok('ancient-ok'), 'allowed', 'allowed', now - 48 * HOUR, now - 47 * HOUR);
    cache(db, tok('stale-no'), 'not_allowed', 'blocked', now - 2 * HOUR, now - HOUR);
    cache(db, tok('offline'), 'not_allowed', 'no_credit', now - 2 * HOUR, now - HOUR);
    cache(db, tok('other-station'), 'allowed', 'allowed', now - 1000, now + 1000, S2);

    const d = run(tok('fresh-ok'), { now });
    assert.equal(brief(d), 'allowed/allowed/cache');
    assert.deepEqual(d.cache_used, { token_hash: hashToken(tok('fresh-ok')), token_type: 'RFID', station_id: S1 });
    assert.equal(brief(run(tok('fresh-no'), { now })), 'not_allowed/no_credit/cache');
    assert.equal(run(tok('fresh-unknown'), { now }).unknown_token, true);
    assert.equal(brief(run(tok('stale-ok'), { now })), 'refer:cached_allowed');
    assert.equal(brief(run(tok('ancient-ok'), { now })), 'refer:none', 'older than OFFLINE_CACHE_MAX_AGE_S');
    assert.equal(brief(run(tok('stale-no'), { now })), 'refer:none', 'known to upstream, so not an unknown token');
    assert.equal(brief(run(tok('offline'), { now })), 'refer:allow_offline:listed', "the operator's allow_offline wins over a stale refusal");
    assert.equal(brief(run(tok('other-station'), { now })), 'refer:unknown_token', 'answers are per station');
    assert.equal(run(tok('nobody'), { now }).referral?.token_hash, hashToken(tok('nobody')));
  });

  it('the local list comes before the cache', (t) => {
    const { db, entry, run } = setup(t);
    const now = Date.now();
    entry('blocked', { blocked: true });
    entry('plain');
    cache(db, tok('blocked'), 'allowed', 'allowed', now, now + HOUR);
    cache(db, tok('plain'), 'not_allowed', 'blocked', now, now + HOUR);
    assert.equal(brief(run(tok('blocked'), { now })), 'not_allowed/blocked/local_list');
    assert.equal(brief(run(tok('plain'), { now })), 'allowed/acl_match/local_list');
  });
});

describe('offline rules (step 4)', () => {
  it('allowed only by allow_offline, a recent cached allowed, or OFFLINE_ALLOW_UNKNOWN for unknown tokens', () => {
    const rows: Array<[Parameters<typeof item>[1], boolean, string]> = [
      [{ offline: 'allow_offline', listed: true }, false, 'allowed/allow_offline'],
      [{ offline: 'cached_allowed' }, false, 'allowed/cached_allowed'],
      [{ offline: 'unknown_token' }, false, 'unknown/timeout'],
      [{ offline: 'unknown_token' }, true, 'allowed/allow_unknown'],
      [{ offline: 'none', listed: true }, true, 'unknown/timeout'],
      [{ offline: 'none' }, true, 'unknown/timeout'],
    ];
    for (const [referral, allowUnknown, expect] of rows) {
      const d = offlineDecision(item('offline-rule-0123456789abcdef', referral), 'timeout', 'UND_ERR_HEADERS_TIMEOUT', allowUnknown);
      assert.equal(`${d.status}/${d.reason}`, expect, JSON.stringify({ referral, allowUnknown }));
      assert.equal(d.source, 'offline_rule');
      assert.equal(d.upstream_error, 'timeout: UND_ERR_HEADERS_TIMEOUT');
      assert.equal(d.unknown_token, referral?.listed ? undefined : expect.startsWith('allowed/allow_unknown') || expect.startsWith('unknown') ? true : undefined);
    }
  });
});
