import { hash } from 'node:crypto';

// Driver tokens are personal data: logs and API reads only ever see the mask,
// and the database keeps a hash once delivery no longer needs the full token.

/** `ABCD…oken`: first and last four characters, never more than half the token. */
export function maskToken(token: string): string {
  if (token.length < 12) return '…';
  return `${token.slice(0, 4)}…${token.slice(-4)}`;
}

/** Hex SHA-256 of the token: stable, so admins can match a token they hold against old rows. */
export function hashToken(token: string): string {
  // One-shot crypto.hash: no Hash object per call (hot path: once per accepted request).
  return hash('sha256', token, 'hex');
}
