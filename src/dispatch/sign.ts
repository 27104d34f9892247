import { createHmac } from 'node:crypto';

// Standard Webhooks signing: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>.
// A `whsec_` secret carries the key base64-encoded; any other value is the key's bytes.

export function secretKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

export function sign(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** The headers of one attempt: webhook-id stays the same across retries, the timestamp does not. */
export function webhookHeaders(key: Buffer | null, id: string, nowMs: number, body: string): Record<string, string> {
  const timestamp = Math.floor(nowMs / 1000);
  const headers: Record<string, string> = { 'webhook-id': id, 'webhook-timestamp': String(timestamp) };
  if (key) headers['webhook-signature'] = sign(key, id, timestamp, body);
  return headers;
}
