import assert from 'node:assert/strict';
import test, { type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { startReceiver, type Receiver } from '../support/receiver.ts';
import { cli, exitWithin, runCli, startService, type ServiceProcess } from '../support/process.ts';
import { waitFor } from '../support/tmp.ts';

// The whole service as a separate process: ACL and stations managed through the CLI while
// it runs, decisions POSTed to real HTTP receivers, the SQLite file read as an admin would.

const ACCEPTED_MESSAGE = 'Request is being processed asynchronously. The result will be sent to the provided callback URL.';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// The SPEC's example station (a version-1 UUID) and a second registered one.
const STATION_A = '123e4567-e89b-12d3-a456-426614174000';
const STATION_B = '6f1c2a8e-3b4d-4c5e-9f60-7a8b9c0d1e2f';
const UNREGISTERED = 'f47ac10b-58cc-4372-a567-0e02b2c3d479';

const TOKENS = {
  allowed: 'ALLOW-token_0001.valid~abc',
  blocked: 'BLOCK-token_0002.valid~abc',
  scoped: 'SCOPE-token_0003.valid~abc',
  expired: 'EXPIR-token_0004.valid~abc',
  unknown: 'UNKNW-token_0005.valid~abc',
  flaky: 'FLAKY-token_0006.valid~abc',
  rejected: 'REJCT-token_0007.valid~abc',
};

function post(svc: ServiceProcess, body: unknown) {
  return fetch(`${svc.base}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** POSTs a start request that must be accepted; returns its request_id. */
async function accept(svc: ServiceProcess, station_id: string, driver_token: string, callback_url: string): Promise<string> {
  const res = await post(svc, { station_id, driver_token, callback_url });
  const body = (await res.json()) as Record<string, unknown>;
  assert.equal(res.status, 202, JSON.stringify(body));
  assert.equal(body.status, 'accepted');
  assert.equal(body.message, ACCEPTED_MESSAGE);
  assert.match(String(body.request_id), UUID);
  assert.equal(res.headers.get('location'), `/api/v1/charging-session/${body.request_id}`);
  return body.request_id as string;
}

/** The admin's view: the SQLite file opened read-only while (or after) the service runs. */
function openReadonly(t: TestContext, path: string): Database.Database {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 2000');
  t.after(() => db.close());
  return db;
}

interface RequestRow {
  state: string;
  decision_status: string | null;
  decision_reason: string | null;
  attempts: number;
  driver_token: string | null;
  last_error: string | null;
}

interface AttemptRow {
  attempt: number;
  http_status: number | null;
  error: string | null;
  outcome: string;
}

function requestRow(db: Database.Database, id: string): RequestRow | undefined {
  return db.prepare('SELECT state, decision_status, decision_reason, attempts, driver_token, last_error FROM charging_requests WHERE id = ?').get(id) as
    | RequestRow
    | undefined;
}

function attemptRows(db: Database.Database, id: string): AttemptRow[] {
  return db.prepare('SELECT attempt, http_status, error, outcome FROM callback_attempts WHERE request_id = ? ORDER BY attempt').all(id) as AttemptRow[];
}

/**
 * SIGTERM must end the service with exit code 0 within a bounded time, and its output must
 * never carry a full token. Every test ends this way.
 */
async function stopCleanly(svc: ServiceProcess, tokens: string[]): Promise<void> {
  svc.kill('SIGTERM');
  const exit = await exitWithin(svc, 15_000);
  assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${svc.stderr()}`);
  assert.ok(svc.lines.some((l) => l.msg === 'shutting down'), 'logs the shutdown');
  assert.ok(svc.lines.some((l) => l.msg === 'stopped'), 'logs the end of the shutdown');
  assert.equal(svc.lines.length, svc.raw.length, 'every stdout line is JSON');
  await assert.rejects(fetch(`${svc.base}/health/live`), 'the port is released');
  for (const token of tokens) {
    const leaks = svc.raw.filter((line) => line.includes(token));
    assert.deepEqual(leaks, [], `a log line carries the full token ${token.slice(0, 5)}…`);
    assert.ok(!svc.stderr().includes(token), 'stderr carries a full token');
  }
}

test('decisions from CLI-managed ACL and stations reach a real receiver with the exact payload', async (t) => {
  const svc = await startService(t, { env: { CALLBACK_MAX_ATTEMPTS: '5' } });
  const db = openReadonly(t, svc.dbPath);

  // The receiver notes, for each callback, what the database held when it arrived: the
  // decision must be on disk before its callback is sent (SPEC §2).
  const decidedOnArrival = new Map<string, string | null>();
  const receiver: Receiver = await startReceiver((call, _n, res) => {
    const id = String(call.headers['webhook-id']);
    decidedOnArrival.set(id, requestRow(db, id)?.decision_status ?? null);
    res.writeHead(200).end();
  });
  t.after(() => receiver.close());

  // The ACL and the stations change while the service runs (several admins at once).
  const [stationsOut, , added, , , , bad] = await Promise.all([
    cli(t, ['stations', 'add', STATION_A, '--db', svc.dbPath]),
    cli(t, ['stations', 'add', STATION_B.toUpperCase(), '--name', 'bay 2', '--db', svc.dbPath]),
    cli(t, ['acl', 'add', TOKENS.allowed, '--db', svc.dbPath]),
    cli(t, ['acl', 'add', TOKENS.blocked, '--blocked', '--db', svc.dbPath]),
    cli(t, ['acl', 'add', TOKENS.scoped, '--station', STATION_B, '--db', svc.dbPath]),
    cli(t, ['acl', 'add', TOKENS.expired, '--expires', '2020-01-01T00:00:00Z', '--db', svc.dbPath]),
    runCli(t, ['acl', 'add', 'short', '--db', svc.dbPath]),
  ]);
  assert.match(stationsOut.stdout, /stations: added 123e4567/);
  assert.ok(!added.stdout.includes(TOKENS.allowed), 'the CLI masks the token it added');
  assert.equal(bad.code, 2, 'a bad token is a usage error');
  assert.equal(bad.stderr.trim().split('\n').length, 1, 'a usage error is one line');

  const cases = [
    { name: 'allowed, unscoped token', station: STATION_A, token: TOKENS.allowed, status: 'allowed', reason: 'acl_match' },
    // Station ids match in any letter case; the callback echoes what the client sent.
    { name: 'allowed, scoped token at its station', station: STATION_B.toUpperCase(), token: TOKENS.scoped, status: 'allowed', reason: 'acl_match' },
    { name: 'scoped token elsewhere', station: STATION_A, token: TOKENS.scoped, status: 'not_allowed', reason: 'station_not_permitted' },
    { name: 'blocked token', station: STATION_A, token: TOKENS.blocked, status: 'not_allowed', reason: 'blocked' },
    { name: 'expired token', station: STATION_B, token: TOKENS.expired, status: 'not_allowed', reason: 'expired' },
    { name: 'unknown token', station: STATION_A, token: TOKENS.unknown, status: 'not_allowed', reason: 'unknown_token' },
    { name: 'unregistered station', station: UNREGISTERED, token: TOKENS.allowed, status: 'invalid', reason: 'station_not_registered' },
  ];
  const ids = await Promise.all(cases.map((c) => accept(svc, c.station, c.token, receiver.url(`/cb/${c.status}`))));
  assert.equal(new Set(ids).size, ids.length, 'every request gets its own id');

  await waitFor(() => ids.every((id) => receiver.callsFor(id).length > 0), { timeoutMs: 15_000, intervalMs: 20, what: 'a callback for every request' });

  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    const id = ids[i]!;
    const calls = receiver.callsFor(id);
    assert.equal(calls.length, 1, `${c.name}: one callback`);
    const call = calls[0]!;
    assert.equal(call.path, `/cb/${c.status}`, `${c.name}: posted to its callback_url`);
    assert.equal(call.headers['content-type'], 'application/json', `${c.name}: content type`);
    assert.match(String(call.headers['webhook-timestamp']), /^\d{10}$/, `${c.name}: webhook-timestamp in seconds`);
    assert.equal(call.headers['webhook-signature'], undefined, `${c.name}: no signature without a secret`);
    // Exactly these three fields, in this order, nothing else.
    assert.equal(call.body, JSON.stringify({ station_id: c.station, driver_token: c.token, status: c.status }), c.name);
    assert.deepEqual(Object.keys(call.json ?? {}), ['station_id', 'driver_token', 'status'], c.name);
    assert.equal(decidedOnArrival.get(id), c.status, `${c.name}: decision persisted before the callback`);
  }

  await waitFor(() => ids.every((id) => requestRow(db, id)?.state === 'delivered'), { timeoutMs: 5000, what: 'every request delivered' });
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    const row = requestRow(db, ids[i]!)!;
    assert.equal(row.decision_status, c.status, c.name);
    assert.equal(row.decision_reason, c.reason, c.name);
    assert.equal(row.attempts, 1, c.name);
    assert.equal(row.driver_token, null, `${c.name}: the full token is dropped once delivered`);
    assert.deepEqual(attemptRows(db, ids[i]!), [{ attempt: 1, http_status: 200, error: null, outcome: 'delivered' }], c.name);
  }

  await stopCleanly(svc, Object.values(TOKENS));
  // With the process gone its output is complete: one log line per request and per
  // decision/delivery, each carrying request_id.
  for (const id of ids) {
    const msgs = svc.lines.filter((l) => l.request_id === id).map((l) => l.msg);
    for (const m of ['accepted', 'decided', 'delivered']) assert.ok(msgs.includes(m), `log "${m}" for ${id}: ${JSON.stringify(msgs)}`);
  }
});

test('5xx twice then 200 is delivered on attempt 3; a 400 fails at once after 1 attempt', async (t) => {
  const svc = await startService(t, { env: { CALLBACK_MAX_ATTEMPTS: '5' } });
  const flaky = await startReceiver((_call, n, res) => res.writeHead(n <= 2 ? 500 : 200).end());
  t.after(() => flaky.close());
  const rejecting = await startReceiver((_call, _n, res) => res.writeHead(400).end('no'));
  t.after(() => rejecting.close());

  const [flakyId, rejectedId] = await Promise.all([
    accept(svc, STATION_A, TOKENS.flaky, flaky.url('/flaky')),
    accept(svc, STATION_A, TOKENS.rejected, rejecting.url('/rejects')),
  ]);
  const db = openReadonly(t, svc.dbPath);
  await waitFor(() => requestRow(db, flakyId)?.state === 'delivered', { timeoutMs: 15_000, intervalMs: 20, what: 'delivered after retries' });
  await waitFor(() => requestRow(db, rejectedId)?.state === 'failed', { timeoutMs: 15_000, intervalMs: 20, what: 'failed after a 400' });

  const delivered = requestRow(db, flakyId)!;
  assert.equal(delivered.attempts, 3);
  assert.equal(delivered.decision_status, 'not_allowed', 'a token not in the ACL');
  assert.equal(delivered.last_error, null);
  assert.equal(delivered.driver_token, null, 'the full token is dropped once delivered');
  assert.deepEqual(attemptRows(db, flakyId), [
    { attempt: 1, http_status: 500, error: null, outcome: 'retry' },
    { attempt: 2, http_status: 500, error: null, outcome: 'retry' },
    { attempt: 3, http_status: 200, error: null, outcome: 'delivered' },
  ]);

  const failed = requestRow(db, rejectedId)!;
  assert.equal(failed.attempts, 1);
  assert.equal(failed.decision_status, 'not_allowed');
  assert.match(String(failed.last_error), /400/);
  assert.deepEqual(attemptRows(db, rejectedId), [{ attempt: 1, http_status: 400, error: null, outcome: 'failed' }]);
  assert.deepEqual(db.prepare('SELECT id FROM failed_requests').pluck().all(), [rejectedId], 'the failed_requests view shows it');

  await stopCleanly(svc, [TOKENS.flaky, TOKENS.rejected]);
  // The process is gone: what the receivers saw is final.
  assert.equal(flaky.calls.length, 3);
  assert.equal(flaky.callsFor(flakyId).length, 3, 'one webhook-id across retries');
  const expected = JSON.stringify({ station_id: STATION_A, driver_token: TOKENS.flaky, status: 'not_allowed' });
  for (const c of flaky.calls) assert.equal(c.body, expected, 'a retry sends the same body');
  assert.equal(rejecting.calls.length, 1, 'a 400 is never retried');
  assert.equal(rejecting.callsFor(rejectedId).length, 1);
});

test('a retried callback carries the first decision even after the ACL changed', async (t) => {
  const svc = await startService(t, { env: { CALLBACK_MAX_ATTEMPTS: '1000', CALLBACK_RETRY_MAX_MS: '50' } });
  let healthy = false;
  const receiver = await startReceiver((_call, _n, res) => res.writeHead(healthy ? 200 : 503).end());
  t.after(() => receiver.close());
  await cli(t, ['acl', 'add', TOKENS.flaky, '--db', svc.dbPath]);

  const id = await accept(svc, STATION_A, TOKENS.flaky, receiver.url('/later'));
  await waitFor(() => receiver.callsFor(id).length >= 1, { timeoutMs: 15_000, what: 'a first attempt' });
  // Blocked between attempts: the pending retry must not ask the ACL again (SPEC §2).
  await cli(t, ['acl', 'add', TOKENS.flaky, '--blocked', '--db', svc.dbPath]);
  healthy = true;
  const db = openReadonly(t, svc.dbPath);
  await waitFor(() => requestRow(db, id)?.state === 'delivered', { timeoutMs: 15_000, what: 'delivered once the receiver recovers' });

  const calls = receiver.callsFor(id);
  assert.ok(calls.length >= 2, `retried (${calls.length} calls)`);
  for (const c of calls) assert.equal(c.json?.status, 'allowed');
  assert.equal(requestRow(db, id)?.decision_status, 'allowed');
  await stopCleanly(svc, [TOKENS.flaky]);
});

test('SIGTERM with a callback in flight exits 0 and hands the work back for the restart', async (t) => {
  // A long callback timeout makes a long lease (decide + callback deadline + slack): only a
  // released lease lets the restarted service deliver within the wait below.
  const env = { CALLBACK_TIMEOUT_MS: '30000', SHUTDOWN_TIMEOUT_MS: '300', CALLBACK_MAX_ATTEMPTS: '5' };
  const svc = await startService(t, { env });
  // The first call hangs (the service is stopped while it waits); later calls succeed.
  const receiver = await startReceiver((_call, n, res) => {
    if (n > 1) res.writeHead(200).end();
  });
  t.after(() => receiver.close());
  const id = await accept(svc, STATION_A, TOKENS.allowed, receiver.url('/slow'));
  await waitFor(() => receiver.callsFor(id).length === 1, { timeoutMs: 15_000, what: 'the first attempt in flight' });

  await stopCleanly(svc, [TOKENS.allowed]);
  const stopped = svc.lines.find((l) => l.msg === 'stopped');
  assert.equal(stopped?.released, 1, 'the in-flight request was released');

  const db = openReadonly(t, svc.dbPath);
  const row = requestRow(db, id)!;
  assert.equal(row.decision_status, 'not_allowed', 'the decision was kept');
  assert.notEqual(row.state, 'delivered');

  const again = await startService(t, { dbPath: svc.dbPath, env });
  await waitFor(() => requestRow(db, id)?.state === 'delivered', { timeoutMs: 10_000, what: 'delivered by the restarted service' });
  const calls = receiver.callsFor(id);
  assert.equal(calls.length, 2);
  assert.equal(calls[1]!.body, JSON.stringify({ station_id: STATION_A, driver_token: TOKENS.allowed, status: 'not_allowed' }));
  assert.ok(!again.lines.some((l) => l.msg === 'decided'), 'the restart did not decide again');
  await stopCleanly(again, [TOKENS.allowed]);
});
