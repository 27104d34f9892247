import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startReceiver } from '../support/receiver.ts';
import { exitWithin, processDir, runCli, startService } from '../support/process.ts';
import { waitFor } from '../support/tmp.ts';
import { callbackCounts, load, percentile, STATION, type LoadResult } from './support/load.ts';

// docs/reliability.md, promise "admins can write while it serves": `chargegate acl import`
// of 10,000 rows (one transaction) from a second process while the API is under load. No
// client sees SQLITE_BUSY (a 503 or a 500), no answer stalls past the documented bound,
// and the decisions made after the import use the new list.

/**
 * A generous no-hang bound on an answer while an admin writes: the measured figures are
 * reported (docs/reliability.md), not asserted; a request stuck behind the whole import
 * would still exceed it.
 */
const STALL_BOUND_MS = 5000;
const ROWS = 10_000;

interface Run {
  result: LoadResult;
  latencies: number[];
  importMs: number;
  importCode: number | null;
  importStderr: string;
  busyLogged: boolean;
  lastStatus: unknown;
  /** ms after the load stopped until every 202 had been called back. */
  deliveredAfterMs: number;
  duplicates: number;
  exit: { code: number | null; signal: NodeJS.Signals | null };
}

async function importUnderLoad(t: { after: (fn: () => unknown) => void }): Promise<Run> {
  const receiver = await startReceiver();
  t.after(() => receiver.close());
  const dir = processDir(t);
  // Short deadlines keep the lease short (AUTHORIZATION_TIMEOUT_MS + CALLBACK_TIMEOUT_MS +
  // 30 s): work whose commit met the admin's lock is claimed again once it expires.
  const svc = await startService(t, { env: { CALLBACK_RETRY_BASE_MS: '10', AUTHORIZATION_TIMEOUT_MS: '1000', CALLBACK_TIMEOUT_MS: '1000' } });
  // The load's own tokens (admin-load-NNNNNNNNNN) are in the file, so decisions switch to
  // "allowed" once the import is committed.
  const csv = join(dir, 'acl.csv');
  const lines = ['token,stations,expires_at,blocked,note'];
  for (let i = 0; i < ROWS; i++) lines.push(`admin-load-${String(i).padStart(10, '0')},${i % 3 === 0 ? STATION : ''},,false,row ${i}`);
  writeFileSync(csv, lines.join('\n') + '\n');

  const latencies: number[] = [];
  let importing = true;
  const loading = load({
    base: svc.base,
    callbackUrl: receiver.url('/admin'),
    concurrency: 16,
    total: 200_000,
    until: Date.now() + 60_000,
    stop: () => !importing,
    tokenPrefix: 'admin-load-',
    onAnswer: (_s, ms) => latencies.push(ms),
  });
  // Under load for a moment before the import starts...
  await waitFor(() => latencies.length > 200, { timeoutMs: 10_000, what: 'load running' });
  const t0 = Date.now();
  const imp = await runCli(t, ['acl', 'import', csv, '--db', svc.dbPath], { timeoutMs: 60_000 });
  const importMs = Date.now() - t0;
  // ...and for a moment after it.
  const after = latencies.length;
  await waitFor(() => latencies.length > after + 200, { timeoutMs: 10_000, what: 'load after the import' });
  importing = false;
  const result = await loading;
  const loadEnd = Date.now();
  await waitFor(() => {
    const seen = callbackCounts(receiver.calls);
    return result.accepted.every((id) => seen.has(id));
  }, { timeoutMs: 45_000, intervalMs: 100, what: 'every accepted request called back' });
  const deliveredAfterMs = Date.now() - loadEnd;
  const seen = callbackCounts(receiver.calls);
  const duplicates = result.accepted.reduce((n, id) => n + (seen.get(id)! - 1), 0);
  const lastToken = `admin-load-${String(result.sent - 1).padStart(10, '0')}`;
  const lastStatus = receiver.calls.find((c) => c.json?.driver_token === lastToken)?.json?.status;
  svc.kill('SIGTERM');
  const exit = await exitWithin(svc, 15_000);
  return {
    result,
    latencies,
    importMs,
    importCode: imp.code,
    importStderr: imp.stderr,
    busyLogged: svc.lines.some((l) => /database is locked|SQLITE_BUSY/.test(JSON.stringify(l))),
    lastStatus,
    deliveredAfterMs,
    duplicates,
    exit,
  };
}

describe('acl import of 10,000 rows while serving at load', () => {
  const cleanups: Array<() => unknown> = [];
  let run: Run;
  before(async () => {
    run = await importUnderLoad({ after: (fn) => void cleanups.push(fn) });
    const statuses = Object.fromEntries(run.result.statuses);
    const l = run.latencies;
    console.log(
      `admin: acl import of ${ROWS} rows took ${run.importMs} ms under load; ${run.result.sent} requests, statuses ${JSON.stringify(statuses)}, ` +
        `latency p50=${percentile(l, 50).toFixed(0)} p99=${percentile(l, 99).toFixed(0)} max=${Math.max(...l).toFixed(0)} ms; ` +
        `all called back ${run.deliveredAfterMs} ms after the load, duplicates=${run.duplicates}`,
    );
  }, { timeout: 120_000 });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  it('the import succeeds while the service keeps committing, and its list decides the requests after it', () => {
    assert.equal(run.importCode, 0, `acl import: ${run.importStderr}`);
    assert.equal(run.lastStatus, 'allowed', 'a token imported before its request is allowed');
    assert.deepEqual(run.exit, { code: 0, signal: null });
  });

  it('no client sees a 500 or a stall past the bound; a busy database is a 503 + Retry-After at worst', () => {
    const statuses = [...run.result.statuses.keys()];
    assert.deepEqual(statuses.filter((s) => s !== 202 && s !== 503), [], `statuses ${JSON.stringify(statuses)}`);
    assert.equal(run.result.retryAfterMissing, 0);
    assert.equal(run.result.transportErrors, 0);
    assert.ok(Math.max(...run.latencies) < STALL_BOUND_MS, `slowest answer ${Math.max(...run.latencies).toFixed(0)} ms`);
  });

  // Staged outside the lock and applied in a few set-based statements, 10k rows hold the
  // write lock ~25 ms (was ~1.4 s, row by row with statements prepared per row), well
  // inside the service's 250 ms busy timeout.
  it('no client sees SQLITE_BUSY at all (not even as a 503)', () => {
    assert.deepEqual(Object.fromEntries(run.result.statuses), { 202: run.result.accepted.length });
    assert.equal(run.busyLogged, false, 'the service never hit a locked database');
  });
});
