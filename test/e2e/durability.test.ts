import assert from 'node:assert/strict';
import { join } from 'node:path';
import test from 'node:test';
import Database from 'better-sqlite3';
import { Pool } from 'undici';
import { startReceiver } from '../support/receiver.ts';
import { exitWithin, processDir, startService } from '../support/process.ts';
import { waitFor } from '../support/tmp.ts';

// SPEC §3: a 202 means the request is on disk, so it survives kill -9; after a restart on
// the same file every accepted request is decided and called back (at least once).

const BURST = 2000;
const CONCURRENCY = 32;
/** Kill once this share of the burst has been answered 202. */
const KILL_AFTER = 0.4;
const BURST_DEADLINE_MS = 20_000;

// Short deadlines keep the lease short: rows the killed process had claimed are claimed
// again once their lease (authorization + callback timeout + the dispatcher's fixed 30 s
// of slack) has run out.
const ENV = {
  AUTHORIZATION_TIMEOUT_MS: '1000',
  CALLBACK_TIMEOUT_MS: '1000',
  CALLBACK_MAX_ATTEMPTS: '50',
  CALLBACK_RETRY_BASE_MS: '10',
  CALLBACK_RETRY_MAX_MS: '200',
  QUEUE_MAX_SIZE: '100000',
};

const STATION = '123e4567-e89b-12d3-a456-426614174000';

test('requests accepted before a SIGKILL are all called back after a restart', { timeout: 120_000 }, async (t) => {
  const dbPath = join(processDir(t), 'cg.db');
  const receiver = await startReceiver();
  t.after(() => receiver.close());
  const callback_url = receiver.url('/burst');

  const first = await startService(t, { dbPath, env: ENV });
  const pool = new Pool(first.base, { connections: CONCURRENCY });
  t.after(() => pool.destroy());

  const accepted: string[] = [];
  const statuses = new Map<number, number>();
  let transportErrors = 0;
  let sent = 0;
  let killed = false;
  let callbacksAtKill = 0;
  const deadline = Date.now() + BURST_DEADLINE_MS;

  async function client(): Promise<void> {
    while (!killed && sent < BURST && Date.now() < deadline) {
      const i = sent++;
      const body = JSON.stringify({ station_id: STATION, driver_token: `burst-token-${String(i).padStart(10, '0')}`, callback_url });
      try {
        const res = await pool.request({ path: '/api/v1/charging-session', method: 'POST', headers: { 'content-type': 'application/json' }, body });
        const text = await res.body.text();
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode !== 202) continue;
        // A 202 that arrives even after the kill was sent after its commit: it counts.
        accepted.push((JSON.parse(text) as { request_id: string }).request_id);
        if (!killed && accepted.length >= BURST * KILL_AFTER) {
          killed = true;
          first.kill('SIGKILL');
          callbacksAtKill = new Set(receiver.calls.map((c) => c.headers['webhook-id'])).size;
        }
      } catch {
        // The connection died with the process: no 202, so nothing was promised.
        transportErrors++;
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  assert.ok(killed, `the burst reached ${KILL_AFTER * 100}% accepted before the deadline (${accepted.length} accepted, statuses ${JSON.stringify([...statuses])})`);
  const exit = await exitWithin(first, 10_000);
  assert.equal(exit.signal, 'SIGKILL');
  assert.ok(accepted.length < BURST, 'killed part-way through the burst');
  assert.equal(new Set(accepted).size, accepted.length, 'request ids are unique');
  assert.deepEqual([...statuses.keys()], [202], `only 202s before the kill: ${JSON.stringify([...statuses])}`);
  // What the killed process left behind, as the file shows it: the last request acked
  // before the kill cannot have been delivered yet, so the restart always has work.
  const left = new Database(dbPath, { readonly: true, fileMustExist: true });
  const statesAtKill = Object.fromEntries(
    (left.prepare('SELECT state, COUNT(*) AS n FROM charging_requests WHERE id IN (SELECT value FROM json_each(?)) GROUP BY state').all(JSON.stringify(accepted)) as Array<{
      state: string;
      n: number;
    }>).map((r) => [r.state, r.n]),
  ) as Record<string, number>;
  left.close();
  const pendingAtKill = accepted.length - (statesAtKill.delivered ?? 0);
  assert.ok(pendingAtKill > 0, `some accepted requests were not yet delivered at the kill: ${JSON.stringify(statesAtKill)}`);
  assert.equal(Object.values(statesAtKill).reduce((a, b) => a + b, 0), accepted.length, 'every 202 is in the file after kill -9');

  const second = await startService(t, { dbPath, env: ENV });
  const listeningAt = Date.now();
  const acceptedSet = new Set(accepted);
  const counts = (): Map<string, number> => {
    const m = new Map<string, number>();
    for (const c of receiver.calls) {
      const id = String(c.headers['webhook-id']);
      m.set(id, (m.get(id) ?? 0) + 1);
    }
    return m;
  };
  const missing = () => {
    const m = counts();
    return accepted.filter((id) => !m.has(id));
  };
  try {
    await waitFor(() => missing().length === 0, { timeoutMs: 60_000, intervalMs: 250, what: 'a callback for every accepted request' });
  } catch (err) {
    const db = new Database(dbPath, { readonly: true, fileMustExist: true });
    const states = db.prepare('SELECT state, COUNT(*) AS n FROM charging_requests GROUP BY state').all();
    db.close();
    throw new Error(`${(err as Error).message}: ${missing().length} of ${accepted.length} missing; db states ${JSON.stringify(states)}`);
  }

  const lastCallbackAt = Math.max(...receiver.calls.map((c) => c.at));

  // The callback arrives before its attempt is committed: poll the file for the final state.
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  t.after(() => db.close());
  const stateOf = db.prepare("SELECT state, COUNT(*) AS n FROM charging_requests WHERE id IN (SELECT value FROM json_each(?)) GROUP BY state");
  const ids = JSON.stringify(accepted);
  const notDelivered = () => (stateOf.all(ids) as Array<{ state: string; n: number }>).filter((r) => r.state !== 'delivered');
  await waitFor(() => notDelivered().length === 0, { timeoutMs: 10_000, intervalMs: 50, what: 'every accepted request delivered in the db' }).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(notDelivered())}`);
  });
  // Rows committed whose 202 never reached the client (the kill cut the answer) are owed a
  // callback as well: nothing the database holds is left behind.
  const open = db.prepare("SELECT COUNT(*) FROM charging_requests WHERE state <> 'delivered'").pluck();
  await waitFor(() => open.get() === 0, { timeoutMs: 10_000, intervalMs: 50, what: 'every stored request delivered' }).catch((err: Error) => {
    throw new Error(`${err.message}: ${String(open.get())} not delivered`);
  });
  const stored = db.prepare('SELECT COUNT(*) FROM charging_requests').pluck().get() as number;

  second.kill('SIGTERM');
  assert.deepEqual(await exitWithin(second, 15_000), { code: 0, signal: null }, second.stderr());

  const final = counts();
  const delivered = accepted.filter((id) => final.has(id)).length;
  const duplicates = accepted.filter((id) => (final.get(id) ?? 0) > 1).length;
  const lost = accepted.length - delivered;
  const unacked = [...final.keys()].filter((id) => !acceptedSet.has(id)).length;
  // Duplicates are the crash's doing only: every callback the receiver saw is a recorded
  // attempt, except at most one per request whose record the kill cut off.
  const recorded = new Map(
    (db.prepare('SELECT request_id, COUNT(*) AS n, SUM(http_status IS NOT NULL) AS answered FROM callback_attempts GROUP BY request_id').all() as Array<{
      request_id: string;
      n: number;
      answered: number;
    }>).map((r) => [r.request_id, r]),
  );
  let unrecorded = 0;
  const unexplained: string[] = [];
  for (const id of accepted) {
    const seen = final.get(id) ?? 0;
    const r = recorded.get(id) ?? { n: 0, answered: 0 };
    if (seen < r.answered || seen > r.n + 1) unexplained.push(`${id}: receiver saw ${seen} calls, db records ${r.n} attempts (${r.answered} answered)`);
    if (seen > r.n) unrecorded++;
  }
  const summary =
    `durability: accepted=${accepted.length} delivered=${delivered} duplicates=${duplicates} lost=${lost}` +
    ` (states_at_kill=${JSON.stringify(statesAtKill)} callbacks_at_kill=${callbacksAtKill} stored=${stored} committed_without_202=${unacked} unrecorded_attempts=${unrecorded} transport_errors=${transportErrors}` +
    ` resumed_in_ms=${lastCallbackAt - listeningAt})`;
  t.diagnostic(summary);
  console.log(summary);

  assert.equal(lost, 0);
  const leaks = [...first.raw, ...second.raw].filter((line) => /burst-token-\d{10}/.test(line));
  assert.deepEqual(leaks, [], 'no log line carries a full driver token');
  assert.deepEqual(unexplained, [], 'every callback seen is a recorded attempt, or the one the kill cut off');
  assert.equal(stored, accepted.length + unacked, 'every stored row is an accepted request or one whose 202 was cut off');
  for (const c of receiver.calls) {
    assert.deepEqual(Object.keys(c.json ?? {}), ['station_id', 'driver_token', 'status']);
    assert.equal(c.json?.status, 'not_allowed', 'tokens not in the ACL are not allowed');
  }
});
