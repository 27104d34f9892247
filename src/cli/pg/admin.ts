import type { Sql } from 'postgres';
import { checkClientName, keyExists, newKey, type KeyRow } from '../../queue/keys.ts';
import { KEYS_CHANNEL } from '../../queue/pg/keys.ts';
import { pgRequestView } from '../../queue/pg/reads.ts';
import type { AdminStore } from '../admin.ts';
import type { ReceiverRow } from '../receivers.ts';
import { checkState, listRow, statsFrom, type ListSource } from '../requests.ts';
import { unknownRow, type UnknownSource } from '../unknown.ts';
import { pgReplay } from './replay.ts';

// The admin commands on PostgreSQL: the same queries as on SQLite (src/cli/admin.ts), the
// rows mapped by the same functions. Text is ordered by COLLATE "C", SQLite's byte order,
// whatever the server's locale: the same data lists in the same order on both engines.

export function pgAdmin(sql: Sql): AdminStore {
  return {
    async requestsList(opts) {
      checkState(opts.state);
      const rows = await sql<ListSource[]>`SELECT id, state, station_id, token_mask, decision_status, attempts, last_error, created_at
        FROM charging_requests ${opts.state ? sql`WHERE state = ${opts.state}` : sql``}
        ORDER BY created_at DESC, id COLLATE "C" DESC LIMIT ${opts.limit}`;
      return rows.map(listRow);
    },
    requestShow: (id) => pgRequestView(sql, id.toLowerCase()),
    replay: (sel, now) => pgReplay(sql, sel, now),
    stats: (now) => statsFrom({
      states: () => sql<Array<{ state: string; n: number }>>`SELECT state, COUNT(*) AS n FROM charging_requests GROUP BY state`,
      oldest: async () => {
        const [r] = await sql<Array<{ at: number | null }>>`SELECT MIN(created_at) AS at FROM charging_requests
          WHERE state IN ('queued','authorizing','delivering')`;
        return r?.at ?? null;
      },
      decisions: () => sql<Array<{ s: string; n: number }>>`SELECT decision_status AS s, COUNT(*) AS n FROM charging_requests
        WHERE decision_status IS NOT NULL GROUP BY 1`,
      async window(since) {
        const [[a], [f]] = await Promise.all([
          sql<Array<{ attempts: number; delivered: number }>>`SELECT COUNT(*) AS attempts,
            COUNT(*) FILTER (WHERE outcome = 'delivered') AS delivered FROM callback_attempts WHERE started_at >= ${since}`,
          sql<Array<{ d: number; f: number }>>`SELECT COUNT(*) FILTER (WHERE state = 'delivered') AS d,
            COUNT(*) FILTER (WHERE state = 'failed') AS f FROM charging_requests WHERE finished_at >= ${since}`,
        ]);
        return { attempts: a!.attempts, delivered: a!.delivered, requestsDelivered: f!.d, requestsFailed: f!.f };
      },
    }, now),
    async receivers(opts) {
      const rows = await sql<ReceiverRow[]>`SELECT * FROM receivers
        ${opts.all ? sql`` : sql`WHERE in_flight > 0 OR queued > 0 OR consecutive_failures > 0`}
        ORDER BY consecutive_failures DESC, queued DESC, origin COLLATE "C" LIMIT 1000`;
      return Array.from(rows);
    },
    async unknownList(opts) {
      const rows = await sql<UnknownSource[]>`SELECT token_mask, token_hash, station_id, seen_count, first_seen_at, last_seen_at,
          last_status, last_reason, last_request_id
        FROM unknown_tokens ${opts.station === undefined ? sql`` : sql`WHERE station_id = ${opts.station}`}
        ORDER BY last_seen_at DESC, token_hash COLLATE "C", station_id COLLATE "C" LIMIT ${opts.limit}`;
      return rows.map(unknownRow);
    },
    async unknownClear() {
      return (await sql`DELETE FROM unknown_tokens`).count;
    },
    async keysAdd(name, opts) {
      checkClientName(name);
      const { key, hash } = newKey();
      await sql.begin(async (tx) => {
        const r = await tx`INSERT INTO api_keys (name, key_hash, created_at, expires_at)
          VALUES (${name}, ${hash}, ${opts.now}, ${opts.expiresAt}) ON CONFLICT (name) DO NOTHING`;
        if (r.count === 0) throw keyExists(name);
        await tx`SELECT pg_notify(${KEYS_CHANNEL}, ${name})`;
      });
      return key;
    },
    keysList: async () => Array.from(await sql<KeyRow[]>`SELECT name, created_at, expires_at, last_used_at FROM api_keys
      ORDER BY name COLLATE "C"`),
    async keysRevoke(name) {
      return sql.begin(async (tx) => {
        const r = await tx`DELETE FROM api_keys WHERE name = ${name}`;
        if (r.count === 1) await tx`SELECT pg_notify(${KEYS_CHANNEL}, ${name})`;
        return r.count === 1;
      });
    },
  };
}
