import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { startApp } from '../support/app.ts';
import { startReceiver, type Received } from '../support/receiver.ts';
import { waitFor } from '../support/tmp.ts';

// Signatures are checked with the Standard Webhooks reference library, not our code.

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';

function headersOf(c: Received): Record<string, string> {
  return Object.fromEntries(Object.entries(c.headers).map(([k, v]) => [k, String(v)]));
}

async function oneCallback(t: Parameters<typeof startApp>[0], env: Record<string, string>) {
  const rx = await startReceiver();
  t.after(rx.close);
  const { base } = await startApp(t, env);
  const res = await fetch(`${base}/api/v1/charging-session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ station_id: S1, driver_token: TOKEN, callback_url: rx.url() }),
  });
  assert.equal(res.status, 202);
  await waitFor(() => rx.calls.length === 1, { what: 'callback' });
  return rx.calls[0]!;
}

describe('callback signing (Standard Webhooks)', () => {
  it('signs with a whsec_ secret; both secrets verify during rotation', async (t) => {
    const next = `whsec_${randomBytes(32).toString('base64')}`;
    const old = `whsec_${randomBytes(24).toString('base64')}`;
    const call = await oneCallback(t, { CALLBACK_SIGNING_SECRET: `${next} ${old}` });
    const headers = headersOf(call);
    assert.equal(headers['webhook-signature']!.split(' ').length, 2);
    for (const secret of [next, old]) {
      assert.deepEqual(new Webhook(secret).verify(call.body, headers), JSON.parse(call.body));
    }
    const stranger = `whsec_${randomBytes(32).toString('base64')}`;
    assert.throws(() => new Webhook(stranger).verify(call.body, headers));
    assert.throws(() => new Webhook(next).verify(call.body.replace('not_allowed', 'allowed'), headers), 'a changed body fails');
  });

  it('signs with a raw secret', async (t) => {
    const call = await oneCallback(t, { CALLBACK_SIGNING_SECRET: 'plain-shared-secret-1234' });
    const key = new TextEncoder().encode('plain-shared-secret-1234');
    assert.ok(new Webhook(key, { format: 'raw' }).verify(call.body, headersOf(call)));
  });

  it('sends no signature without a secret', async (t) => {
    const call = await oneCallback(t, {});
    assert.equal(call.headers['webhook-signature'], undefined);
    assert.match(String(call.headers['webhook-timestamp']), /^\d{10}$/);
  });
});
