import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pgAdmin } from '../../src/cli/pg/admin.ts';
import { connectPg } from '../../src/queue/pg/connect.ts';
import { createPgKeys } from '../../src/queue/pg/keys.ts';
import { ENGINES } from '../support/engines.ts';
import { waitFor } from '../support/tmp.ts';

// What `chargegate replay` and `chargegate keys` change on PostgreSQL reaches running
// instances through NOTIFY, not only through their polls: a replayed request wakes the
// claim loop, a revoked key is refused without waiting for the keyring's next read.

const pg = ENGINES.find((e) => e.name === 'postgres')!;
const ID = '018f0000-0000-7000-8000-0000000000aa';

describe('the CLI wakes running instances (PostgreSQL)', { skip: pg.skip }, () => {
  it('replay NOTIFYs the claim loop; the row is claimable at once', async (t) => {
    const inst = await pg.open(t);
    const sql = connectPg(inst.where, { schema: inst.schema!, max: 2 });
    t.after(() => sql.end({ timeout: 1 }));
    const now = Date.now();
    await inst.all(`INSERT INTO charging_requests (id, station_id, driver_token, token_hash, token_mask, callback_url, origin, state,
      created_at, updated_at, due_at, attempts, decision_status, decision_reason, decision_source, decided_at, finished_at, last_error)
      VALUES (?, 's', 'ABCD-efgh1234567890_~valid.token', 'h', 'ABCD…oken', 'http://127.0.0.1:1/cb', 'http://127.0.0.1:1', 'failed',
      ?, ?, ?, 2, 'allowed', 'acl', 'acl', ?, ?, 'HTTP 410')`, ID, now - 5000, now - 1000, now - 1000, now - 4000, now - 1000);
    let woken = 0;
    inst.queue.watch(() => void woken++);
    // The listener is set up asynchronously: a notification before it would be lost.
    await waitFor(async () => (await inst.all("SELECT 1 FROM pg_stat_activity WHERE query ILIKE 'listen%chargegate_queue%'")).length > 0, { what: 'listening' });
    const r = await pgAdmin(sql).replay({ ids: [ID.toUpperCase()] }, now);
    assert.deepEqual(r, { replayed: [ID], skipped: [] });
    await waitFor(() => woken > 0, { what: 'the wake-up' });
    const [row] = await inst.all<{ state: string; replays: number; round_start_attempts: number; finished_at: number | null; last_error: string | null }>(
      'SELECT state, replays, round_start_attempts, finished_at, last_error FROM charging_requests WHERE id = ?', ID);
    assert.deepEqual(row, { state: 'delivering', replays: 1, round_start_attempts: 2, finished_at: null, last_error: null });
    const claimed = await inst.queue.claim({
      now: now + 1, leaseMs: 1000, reserve: () => 0, deliverable: () => 10, saturated: () => [], take: () => true,
      wantNext: () => ({ undecided: false, deliverable: true }),
    } as never);
    assert.deepEqual(claimed.deliverable.map((c) => c.id), [ID]);
    const twice = await pgAdmin(sql).replay({ failedSince: null }, now);
    assert.deepEqual(twice, { replayed: [], skipped: [] }, 'no longer failed: not replayed again');
  });

  it('keys add and revoke reach a keyring whose poll is an hour away', async (t) => {
    const inst = await pg.open(t);
    const sql = connectPg(inst.where, { schema: inst.schema!, max: 2 });
    t.after(() => sql.end({ timeout: 1 }));
    const keys = await createPgKeys(sql, { required: false, now: Date.now, refreshMs: 3_600_000 });
    t.after(() => keys.stop());
    assert.equal(keys.required(), false);
    const admin = pgAdmin(sql);
    const key = await admin.keysAdd('site-a', { expiresAt: null, now: Date.now() });
    await waitFor(() => keys.verify(key) === 'site-a', { what: 'the new key' });
    assert.equal(keys.required(), true);
    await assert.rejects(admin.keysAdd('site-a', { expiresAt: null, now: Date.now() }), /a key named site-a exists/);
    assert.equal(await admin.keysRevoke('site-a'), true);
    await waitFor(() => keys.verify(key) === null, { what: 'the revoked key refused' });
    assert.equal(await admin.keysRevoke('site-a'), false);
  });
});
