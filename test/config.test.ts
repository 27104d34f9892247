import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { dbPathFrom, DEFAULT_DB_PATH, loadConfig, unpackSettings } from '../src/config.ts';

describe('loadConfig', () => {
  it('HOST is an IP address or a host name; anything else names HOST (or --host)', () => {
    for (const ok of ['0.0.0.0', '127.0.0.1', '::', '::1', 'localhost', 'gw-1.site.example', 'gw.example.']) assert.equal(loadConfig({ HOST: ok }).host, ok);
    for (const bad of ['999.0.0.1', '1.2.3', 'a b', '-gw', 'gw_1', 'http://gw', '[::1]']) {
      assert.throws(() => loadConfig({ HOST: bad }), { message: new RegExp(`^invalid HOST=${JSON.stringify(bad).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: expected an IP address`) }, bad);
    }
    assert.throws(() => loadConfig({}, { HOST: 'a b' }), { message: /^invalid --host="a b"/ });
  });

  it('a boolean setting reads true/false from the environment and from its switch', () => {
    assert.equal(loadConfig({ OFFLINE_ALLOW_UNKNOWN: 'yes' }).offlineAllowUnknown, true);
    assert.equal(loadConfig({ OFFLINE_ALLOW_UNKNOWN: 'true' }, { OFFLINE_ALLOW_UNKNOWN: 'false' }).offlineAllowUnknown, false, 'the switch wins');
    assert.throws(() => loadConfig({ OFFLINE_ALLOW_UNKNOWN: 'maybe' }), { message: /^invalid OFFLINE_ALLOW_UNKNOWN="maybe": expected true or false/ });
  });

  it('has the SPEC defaults', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.dbPath, './data/chargegate.db');
    assert.equal(c.authorizationTimeoutMs, 30_000);
    assert.equal(c.callbackTimeoutMs, 10_000);
    assert.equal(c.logLevel, 'info');
    assert.equal(c.queueMaxSize, 10_000);
    assert.equal(c.workers, availableParallelism());
    assert.equal(c.callbackMaxAttempts, 10);
    assert.equal(c.callbackRetryBaseMs, 1000);
    assert.equal(c.callbackRetryMaxMs, 3_600_000);
    assert.equal(c.callbackSigningSecret, null);
    assert.equal(c.retentionDays, 30);
    assert.ok(Object.isFrozen(c));
  });

  it('reads environment variables, and flags win over them', () => {
    const c = loadConfig({ PORT: '9000', QUEUE_MAX_SIZE: '5', LOG_LEVEL: 'DEBUG' }, { PORT: '9100' });
    assert.equal(c.port, 9100);
    assert.equal(c.queueMaxSize, 5);
    assert.equal(c.logLevel, 'debug');
  });

  it('names the variable or flag of an invalid value', () => {
    assert.throws(() => loadConfig({ PORT: 'eighty' }), /invalid PORT="eighty"/);
    assert.throws(() => loadConfig({ PORT: '70000' }), /PORT/);
    assert.throws(() => loadConfig({ WORKERS: '0' }), /WORKERS/);
    assert.throws(() => loadConfig({ QUEUE_MAX_SIZE: '1.5' }), /QUEUE_MAX_SIZE/);
    assert.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL/);
    assert.throws(() => loadConfig({ AUTHORIZER_URL: 'ftp://x' }), /AUTHORIZER_URL/);
    assert.throws(() => loadConfig({}, { CALLBACK_TIMEOUT_MS: '-1' }), /invalid --callback-timeout-ms/);
    assert.throws(() => loadConfig({ CALLBACK_RETRY_BASE_MS: '5000', CALLBACK_RETRY_MAX_MS: '10' }), /CALLBACK_RETRY_BASE_MS/);
  });

  it('one rule for the database path, shared by serve, every command and the executable\'s unpacking', () => {
    assert.equal(loadConfig({}).dbPath, DEFAULT_DB_PATH);
    assert.equal(dbPathFrom({}), DEFAULT_DB_PATH);
    assert.equal(dbPathFrom({ DB_PATH: '/var/lib/cg.db' }), '/var/lib/cg.db');
    assert.equal(dbPathFrom({ DB_PATH: '/var/lib/cg.db' }, '/x.db'), '/x.db');
    assert.deepEqual(unpackSettings({}, ['serve']), { cacheDir: null, cacheDirFrom: null, dbPath: DEFAULT_DB_PATH });
    assert.deepEqual(unpackSettings({ DB_PATH: '/a.db' }, ['acl', 'list', '--db=/b.db']), { cacheDir: null, cacheDirFrom: null, dbPath: '/b.db' });
    assert.deepEqual(unpackSettings({ CHARGEGATE_CACHE_DIR: '/c' }, ['serve', '--cache-dir', '/d', '--db', '/e.db']), { cacheDir: '/d', cacheDirFrom: '--cache-dir', dbPath: '/e.db' });
    assert.deepEqual(unpackSettings({ CHARGEGATE_CACHE_DIR: '/c' }, ['serve', '--', '--cache-dir', '/d']), { cacheDir: '/c', cacheDirFrom: 'CHARGEGATE_CACHE_DIR', dbPath: DEFAULT_DB_PATH });
  });
});
