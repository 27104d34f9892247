import { createHash, timingSafeEqual } from 'node:crypto';
import type { Sql } from 'postgres';
import type { KeyDoor } from '../queue.ts';

// API keys on PostgreSQL: the table is read into memory and read again when `chargegate
// keys` NOTIFYs KEYS_CHANNEL after a change (a revoked key is refused at once, as on SQLite,
// where PRAGMA data_version tells), and every few seconds in case a notification was lost
// (a reconnect drops them). verify() stays synchronous, as on SQLite (src/queue/keys.ts),
// and a miss costs what a hit costs.

/** The channel `chargegate keys add|revoke` NOTIFYs on after it committed a change. */
export const KEYS_CHANNEL = 'chargegate_keys';
const REFRESH_MS = 2000;
const sha256 = (s: string) => createHash('sha256').update(s).digest();

interface Entry {
  name: string;
  hash: Buffer;
  expiresAt: number | null;
}

export interface PgKeysOptions {
  required: boolean;
  now: () => number;
  /** How often the table is read again without a notification (tests set it long to see the notification work). */
  refreshMs?: number;
}

export async function createPgKeys(sql: Sql, opts: PgKeysOptions): Promise<KeyDoor & { stop(): Promise<void> }> {
  let byHash = new Map<string, Entry>();
  const used = new Map<string, number>();
  const decoy = sha256('decoy');

  // Reads in flight at once (a notification during the timer's read) may finish out of
  // order: only a read started after the applied one replaces it.
  let started = 0;
  let applied = 0;
  async function refresh(): Promise<void> {
    const seq = ++started;
    const rows = await sql<Array<{ name: string; key_hash: string; expires_at: number | null }>>`SELECT name, key_hash, expires_at FROM api_keys`;
    if (seq < applied) return;
    applied = seq;
    const next = new Map<string, Entry>();
    for (const r of rows) next.set(r.key_hash, { name: r.name, hash: Buffer.from(r.key_hash, 'hex'), expiresAt: r.expires_at });
    byHash = next;
  }
  // Listening before the first read: a change committed once this returned is never
  // missed. Each (re)connect of the listening session reads again (notifications sent while
  // it was down are lost). A server that refuses LISTEN (a pooler in transaction mode)
  // leaves the poll alone.
  const again = () => void refresh().catch(() => undefined);
  const listening = await sql.listen(KEYS_CHANNEL, again, again).catch(() => null);
  try {
    await refresh();
  } catch (err) {
    await listening?.unlisten().catch(() => undefined);
    throw err;
  }
  const timer = setInterval(again, opts.refreshMs ?? REFRESH_MS);
  timer.unref();

  return {
    required: () => opts.required || byHash.size > 0,
    verify(presented: string): string | null {
      const h = sha256(presented);
      const e = byHash.get(h.toString('hex'));
      const ok = timingSafeEqual(h, e ? e.hash : decoy) && e !== undefined;
      if (!ok || (e.expiresAt !== null && e.expiresAt <= opts.now())) return null;
      used.set(e.name, opts.now());
      return e.name;
    },
    async flushUsage(): Promise<number> {
      let n = 0;
      const batch = [...used];
      used.clear();
      for (const [name, at] of batch) {
        const r = await sql`UPDATE api_keys SET last_used_at = ${at}
          WHERE name = ${name} AND (last_used_at IS NULL OR last_used_at < ${at - 60_000})`;
        n += r.count;
      }
      return n;
    },
    get pending() {
      return used.size;
    },
    async stop() {
      clearInterval(timer);
      await listening?.unlisten().catch(() => undefined);
    },
  };
}
