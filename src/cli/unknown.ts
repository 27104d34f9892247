import type { Db } from '../queue/db.ts';

// `acl unknown`: tokens without a local-list entry that were refused as unknown (or left
// undecided while the upstream was down, or let through by OFFLINE_ALLOW_UNKNOWN), per
// station, newest first. Only the hash and the mask are kept: an admin matches the mask
// against the card or the driver's app and adds it with `acl add`, which also clears it
// from this list.

export interface UnknownRow {
  token: string;
  token_hash: string;
  station_id: string;
  count: number;
  first_seen_at: string;
  last_seen_at: string;
  last_decision: string;
  last_request_id: string;
}

/** An unknown_tokens row as `acl unknown` reads it (both engines). */
export interface UnknownSource {
  token_mask: string;
  token_hash: string;
  station_id: string;
  seen_count: number;
  first_seen_at: number;
  last_seen_at: number;
  last_status: string;
  last_reason: string;
  last_request_id: string;
}

export function unknownRow(r: UnknownSource): UnknownRow {
  return {
    token: r.token_mask,
    token_hash: r.token_hash,
    station_id: r.station_id,
    count: r.seen_count,
    first_seen_at: new Date(r.first_seen_at).toISOString(),
    last_seen_at: new Date(r.last_seen_at).toISOString(),
    last_decision: `${r.last_status}/${r.last_reason}`,
    last_request_id: r.last_request_id,
  };
}

export function unknownList(db: Db, opts: { limit: number; station?: string | undefined }): UnknownRow[] {
  const rows = db
    .prepare(`SELECT token_mask, token_hash, station_id, seen_count, first_seen_at, last_seen_at, last_status, last_reason, last_request_id
      FROM unknown_tokens WHERE (@station IS NULL OR station_id = @station) ORDER BY last_seen_at DESC, token_hash, station_id LIMIT @limit`)
    .all({ station: opts.station ?? null, limit: opts.limit }) as UnknownSource[];
  return rows.map(unknownRow);
}

export function unknownClear(db: Db): number {
  return db.prepare('DELETE FROM unknown_tokens').run().changes;
}
