import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ENGINES } from '../support/engines.ts';
import { startService } from '../support/process.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// Two service processes on one PostgreSQL database; one is killed with SIGKILL while its
// callbacks are in flight. Every request that got a 202 is delivered; the survivor takes
// the dead one's claimed work over once its session is gone, long before the leases
// (here 65 s) would have expired; duplicates are only what was in flight at the kill.

const pg = ENGINES.find((e) => e.name === 'postgres')!;
const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const N = 120;

describe('two instances on postgres', { skip: pg.skip }, () => {
  it('kill -9 one under load: every accepted request is delivered, the survivor takes over, duplicates bounded', async (t) => {
    // Answers after 200 ms, so each instance has callbacks in flight when one is killed.
    const rx = await startReceiver((_c, _n, res) => void setTimeout(() => res.writeHead(200).end(), 200));
    t.after(rx.close);
    const data = await pg.appDatabase();
    await data.run('INSERT INTO acl (token, blocked) VALUES (?, 0)', TOKEN);
    const env = { ...data.env, WORKERS: '1', CALLBACK_TIMEOUT_MS: '5000' };
    const a = await startService(t, { env });
    const b = await startService(t, { env });
    t.after(data.drop);
    const post = async (base: string) => {
      const res = await fetch(`${base}/api/v1/charging-session`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url: rx.url() }),
      });
      assert.equal(res.status, 202);
      return ((await res.json()) as { request_id: string }).request_id;
    };
    const ids: string[] = [];
    for (let i = 0; i < N; i += 20) {
      ids.push(...(await Promise.all(Array.from({ length: 20 }, (_, j) => post(j % 2 ? a.base : b.base)))));
    }
    await waitFor(() => rx.calls.length > 0, { what: 'callbacks under way' });
    a.kill('SIGKILL');
    await a.stopped;
    const killedAt = Date.now();
    await waitFor(async () => {
      const rows = await data.run("SELECT COUNT(*) AS n FROM charging_requests WHERE state = 'delivered'");
      return Number(rows[0]!.n) === N;
    }, { what: 'every accepted request delivered', timeoutMs: 40_000 });
    const tookOverMs = Date.now() - killedAt;
    const seen = new Map<string, number>();
    for (const c of rx.calls) seen.set(String(c.headers['webhook-id']), (seen.get(String(c.headers['webhook-id'])) ?? 0) + 1);
    assert.ok(ids.every((id) => seen.has(id)), 'every accepted request was called back');
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    // A duplicate is a row the killed instance held (its POST made, its record not written)
    // that the survivor delivered again: one extra callback at most, never more. How many
    // rows the killed one held depends on how the claims fell (19–62 of 120 seen), so the
    // count is reported, and the bound is per request.
    const most = Math.max(...seen.values());
    assert.ok(most <= 2, `a request was called back ${most} times`);
    assert.ok(tookOverMs < 30_000, `the survivor took over in ${tookOverMs} ms, not at lease expiry`);
    const instances = await data.run('SELECT pid FROM service_instance');
    assert.deepEqual(instances.map((r) => Number(r.pid)), [b.pid], 'the dead instance is gone from service_instance');
    t.diagnostic(`failover: accepted=${N} delivered=${N} duplicates=${duplicates} lost=0 took_over_ms=${tookOverMs}`);
  });
});
