import { createHmac } from 'node:crypto';

// Standard Webhooks signing: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>.
// A `whsec_` secret carries the key base64-encoded; any other value is the key's bytes.
// Several secrets (space- or comma-separated) sign with each, space-delimited, so that
// receivers can move from the old secret to the new one without a flag day.

export function secretKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

/** The keys of CALLBACK_SIGNING_SECRET, newest first as the operator lists them. */
export function signingKeys(secrets: string | null): Buffer[] {
  if (!secrets) return [];
  return secrets
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(secretKey);
}

export function sign(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** The headers of one attempt: webhook-id stays the same across retries, the timestamp does not. */
export function webhookHeaders(keys: Buffer[], id: string, nowMs: number, body: string): Record<string, string> {
  const timestamp = Math.floor(nowMs / 1000);
  const headers: Record<string, string> = { 'webhook-id': id, 'webhook-timestamp': String(timestamp) };
  if (keys.length) headers['webhook-signature'] = keys.map((k) => sign(k, id, timestamp, body)).join(' ');
  return headers;
}
