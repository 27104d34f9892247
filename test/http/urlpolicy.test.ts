import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.ts';
import { startReceiver } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';

async function post(base: string, callback_url: string) {
  const res = await fetch(`${base}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ station_id: S1, driver_token: TOKEN, callback_url }),
  });
  return { status: res.status, body: (await res.json()) as { request_id?: string; errors?: Array<{ field: string; message: string }> } };
}

describe('callback URL policy, end to end', () => {
  it('refuses metadata and link-local targets at accept time with 400', async (t) => {
    const { base, app } = await startApp(t);
    for (const url of ['http://169.254.169.254/latest/meta-data', 'http://metadata.google.internal/computeMetadata/v1', 'http://[fe80::1]/cb', 'http://[::ffff:169.254.169.254]/']) {
      const r = await post(base, url);
      assert.equal(r.status, 400, url);
      assert.equal(r.body.errors![0]!.field, 'callback_url');
      assert.match(r.body.errors![0]!.message, /not an allowed callback target/);
    }
    assert.equal((app.db.prepare('SELECT COUNT(*) AS n FROM charging_requests').get() as { n: number }).n, 0);
  });

  it('applies CALLBACK_ALLOWED_HOSTS to the text, then to the resolved address at connect time', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const { base, app } = await startApp(t, { CALLBACK_ALLOWED_HOSTS: 'client.app,10.0.0.0/8' });
    assert.equal((await post(base, `http://127.0.0.1:${rx.port}/cb`)).status, 400, 'IP literal outside the list');
    // `localhost` is not listed but could resolve into 10/8: accepted, then refused once
    // resolved to loopback, without retries and without reaching the receiver.
    const r = await post(base, `http://localhost:${rx.port}/cb`);
    assert.equal(r.status, 202);
    const id = r.body.request_id!;
    const row = () => app.db.prepare('SELECT state, attempts, last_error FROM charging_requests WHERE id = ?').get(id) as { state: string; attempts: number; last_error: string };
    await waitFor(() => row().state === 'failed', { what: 'refused delivery' });
    assert.equal(row().attempts, 1);
    assert.match(row().last_error, /^refused_by_policy: host localhost \(.+\) is not in CALLBACK_ALLOWED_HOSTS/);
    assert.equal(rx.calls.length, 0);
  });

  it('delivers to an allowed name', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const { base } = await startApp(t, { CALLBACK_ALLOWED_HOSTS: 'localhost' });
    assert.equal((await post(base, `http://localhost:${rx.port}/cb`)).status, 202);
    await waitFor(() => rx.calls.length === 1, { what: 'callback' });
  });
});
