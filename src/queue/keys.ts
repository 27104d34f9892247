import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ChargegateError } from '../core/errors.ts';
import type { Db } from './db.ts';

// API keys, one per client (SPEC "Who may call"). Keys are 256 random bits, printed once;
// the database keeps their SHA-256 only (a hash of a high-entropy secret needs no salt or
// slow KDF). The service reads the table into memory and re-reads it when another
// process (the CLI) changed the database, so keys are managed while it runs.

export const CLIENT_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const KEY_PREFIX = 'cg_';

export interface KeyRow {
  name: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export function checkClientName(name: string): string {
  if (!CLIENT_NAME_RE.test(name)) {
    throw new ChargegateError('CG_ERR_USAGE', `invalid client name ${JSON.stringify(name)}: 1-64 of a-z 0-9 . _ -, starting with a letter or digit`);
  }
  return name;
}

/** A new key and the hash the database keeps of it (both engines). */
export function newKey(): { key: string; hash: string } {
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  return { key, hash: sha256(key).toString('hex') };
}

/** The refusal of a second key for one name (both engines). */
export function keyExists(name: string): ChargegateError {
  return new ChargegateError('CG_ERR_INVALID_REQUEST', `a key named ${name} exists; revoke it first to issue a new one`);
}

/** Creates a key for a new client; returns the key, which is never stored. */
export function keysAdd(db: Db, name: string, opts: { expiresAt: number | null; now: number }): string {
  checkClientName(name);
  const { key, hash } = newKey();
  try {
    db.prepare('INSERT INTO api_keys (name, key_hash, created_at, expires_at) VALUES (?, ?, ?, ?)').run(name, hash, opts.now, opts.expiresAt);
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw keyExists(name);
    throw err;
  }
  return key;
}

export function keysList(db: Db): KeyRow[] {
  return db.prepare('SELECT name, created_at, expires_at, last_used_at FROM api_keys ORDER BY name').all() as KeyRow[];
}

/** Removes a client's key; false when there was none. */
export function keysRevoke(db: Db, name: string): boolean {
  return db.prepare('DELETE FROM api_keys WHERE name = ?').run(name).changes === 1;
}

interface Entry {
  name: string;
  hash: Buffer;
  expiresAt: number | null;
}

/** The service's side: verifies presented keys, remembers when each was last used. */
export function createKeyring(db: Db, opts: { required: boolean; now?: () => number }) {
  const now = opts.now ?? Date.now;
  const all = db.prepare('SELECT name, key_hash, expires_at FROM api_keys');
  const touch = db.prepare('UPDATE api_keys SET last_used_at = ? WHERE name = ? AND (last_used_at IS NULL OR last_used_at < ?)');
  const dataVersion = db.prepare('PRAGMA data_version').pluck();
  let byHash = new Map<string, Entry>();
  let seen = -1;
  const used = new Map<string, number>();
  // Compared against when a key matches nothing, so a miss costs what a hit costs.
  const decoy = sha256('decoy');

  /** Re-reads the table when another connection committed since the last look (PRAGMA data_version). */
  function refresh(): void {
    const v = dataVersion.get() as number;
    if (v === seen) return;
    seen = v;
    const next = new Map<string, Entry>();
    for (const r of all.all() as Array<{ name: string; key_hash: string; expires_at: number | null }>) {
      next.set(r.key_hash, { name: r.name, hash: Buffer.from(r.key_hash, 'hex'), expiresAt: r.expires_at });
    }
    byHash = next;
  }

  return {
    /** Keys are asked for: at least one exists, or API_KEYS_REQUIRED=true. */
    required(): boolean {
      refresh();
      return opts.required || byHash.size > 0;
    },
    /**
     * The client a presented key belongs to, or null (unknown, revoked or expired). Asked
     * right after required() in the same request, which already re-read the table if needed.
     */
    verify(presented: string): string | null {
      const h = sha256(presented);
      const e = byHash.get(h.toString('hex'));
      const ok = timingSafeEqual(h, e ? e.hash : decoy) && e !== undefined;
      if (!ok || (e.expiresAt !== null && e.expiresAt <= now())) return null;
      used.set(e.name, now());
      return e.name;
    },
    /** Writes last-used times (to the minute), in the given transaction runner; a no-op when nothing was used. */
    flushUsage(): number {
      let n = 0;
      for (const [name, at] of used) n += touch.run(at, name, at - 60_000).changes;
      used.clear();
      return n;
    },
    get pending(): number {
      return used.size;
    },
  };
}

export type Keyring = ReturnType<typeof createKeyring>;
