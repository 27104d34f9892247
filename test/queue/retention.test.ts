import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openDb } from '../../src/queue/db.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { createRetention } from '../../src/queue/retention.ts';
import { createSqliteQueue } from '../../src/queue/sqlite.ts';
import { createStore } from '../../src/queue/store.ts';
import { captureLog } from '../support/app.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

const DAY = 86_400_000;

describe('retention', () => {
  it('prunes finished requests past RETENTION_DAYS with their attempts, in batches, and old idempotency keys', async (t) => {
    const db = openDb(join(tempDir(t), 'r.db'), { busyTimeoutMs: 1000 });
    migrate(db);
    t.after(() => db.close());
    const store = createStore(db);
    const now = 100 * DAY;
    const make = (finishedDaysAgo: number | null, outcome: 'delivered' | 'failed') => {
      const id = randomUUID();
      store.insert({ id, station_id: 's', driver_token: 'ABCD-efgh1234567890_~valid.token', token_hash: 'h', token_mask: 'm', callback_url: 'http://x/', created_at: 0 });
      if (finishedDaysAgo !== null) {
        const [c] = store.claimUndecided(0, 1, 1);
        store.recordDecision({ id, status: 'allowed', reason: 'r', source: 'local_list', latency_ms: 1 }, { id, claim: c!.claim_count }, true, 0);
        store.recordAttempt({ id, attempt: 1, started_at: 0, duration_ms: 1, http_status: outcome === 'delivered' ? 200 : 400, error: null, outcome, next_due_at: null, failure: null }, c!.claim_count, now - finishedDaysAgo * DAY);
      }
      return id;
    };
    const old = Array.from({ length: 12 }, (_, i) => make(31 + i, i % 2 ? 'failed' : 'delivered'));
    const recent = make(29, 'delivered');
    const open = make(null, 'delivered');
    store.insertKey('old-key', 'h', old[0]!, now - 2 * DAY);
    store.insertKey('new-key', 'h', recent, now - 1000);
    const attempt = { id: 'x', attempt: 1, started_at: 0, duration_ms: 1, http_status: 200, error: null, outcome: 'delivered' as const, next_due_at: null, failure: null };
    store.recordOrigin('http://gone.example', [attempt], now - 40 * DAY);
    store.recordOrigin('http://busy.example', [attempt], now - DAY);

    let commits = 0;
    const queue = createSqliteQueue(db, { path: ':memory:', maxCacheEntries: 10, keysRequired: false, hooks: { onCommit: () => commits++ } });
    const retention = createRetention({ queue, log: captureLog().log, retentionDays: 30, idempotencyTtlMs: DAY, now: () => now, batchSize: 5 });
    assert.deepEqual(await retention.runOnce(), { requests: 12, keys: 1, origins: 1 });
    assert.ok(commits >= 3, 'several small transactions, not one long one');
    const ids = (db.prepare('SELECT id FROM charging_requests ORDER BY id').pluck().all() as string[]).sort();
    assert.deepEqual(ids, [recent, open].sort());
    assert.equal((db.prepare('SELECT COUNT(*) FROM callback_attempts').pluck().get() as number), 1);
    assert.deepEqual(db.prepare('SELECT key FROM idempotency_keys').pluck().all(), ['new-key']);
    assert.deepEqual(db.prepare('SELECT origin FROM callback_origins').pluck().all(), ['http://busy.example'], 'receivers not called for RETENTION_DAYS go');
    assert.deepEqual(await retention.runOnce(), { requests: 0, keys: 0, origins: 0 });
  });
});

describe('retention stop', () => {
  it('ends a long run between batches instead of awaiting the whole prune', { timeout: 60_000 }, async (t) => {
    const db = openDb(join(tempDir(t), 'r.db'), { busyTimeoutMs: 1000 });
    migrate(db);
    t.after(() => db.close());
    const now = 100 * DAY;
    const ROWS = 20_000;
    // A first prune after months without one: many finished rows past RETENTION_DAYS.
    db.prepare(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
      INSERT INTO charging_requests (id, station_id, token_hash, token_mask, callback_url, state, created_at, updated_at, due_at, finished_at)
      SELECT printf('r%06d', i), 's', 'h', 'm', 'http://x/', 'delivered', 0, 0, 0, ? - 40 * ? FROM n`).run(ROWS, now, DAY);
    let commits = 0;
    let commitsAfterStop = 0;
    let stopping: Promise<void> | null = null;
    const retention = createRetention({
      log: captureLog().log,
      retentionDays: 30,
      idempotencyTtlMs: DAY,
      now: () => now,
      batchSize: 500,
      queue: createSqliteQueue(db, {
        path: ':memory:',
        maxCacheEntries: 10,
        keysRequired: false,
        hooks: {
          onCommit: () => {
            commits++;
            if (stopping) commitsAfterStop++;
            // stop() is called while the run is under way, right after its first batch.
            else stopping = retention.stop();
          },
        },
      }),
    });
    retention.start();
    await waitFor(() => stopping !== null, { what: 'the first batch' });
    await stopping;
    const left = db.prepare('SELECT COUNT(*) FROM charging_requests').pluck().get() as number;
    assert.ok(left > 0, `the run ended before pruning all ${ROWS} rows (it pruned ${ROWS - left} in ${commits} commits)`);
    assert.ok(commitsAfterStop <= 1, `at most the batch in hand is committed after stop(): ${commitsAfterStop}`);
    assert.deepEqual(await retention.runOnce(), { requests: 0, keys: 0, origins: 0 }, 'no run after stop');
  });
});
