import type { RequestView } from '../core/types.ts';
import type { Db } from '../queue/db.ts';
import { keysAdd, keysList, keysRevoke, type KeyRow } from '../queue/keys.ts';
import { receivers, type ReceiverRow } from './receivers.ts';
import { replay, requestShow, requestsList, stats, type ReplayResult, type RequestListRow, type Stats } from './requests.ts';
import { unknownClear, unknownList, type UnknownRow } from './unknown.ts';

// What the inspection and operations commands (requests, replay, stats, receivers, keys,
// acl unknown) ask of a database, whichever engine holds it (issue 12): the commands call
// this interface and never ask which engine they talk to. SQLite: the functions the
// commands used before, unchanged; PostgreSQL: src/cli/pg/admin.ts. Both return the same
// rows for the same data, so the output (human and --json) is the same.

export type ReplaySelection = { ids: string[] } | { failedSince: number | null };

export interface AdminStore {
  requestsList(opts: { state?: string | undefined; limit: number }): Promise<RequestListRow[]>;
  /** The API's view of one request (GET /api/v1/charging-session/{id}); null when there is none. */
  requestShow(id: string): Promise<RequestView | null>;
  /** Failed requests back to delivery with their recorded decision; running instances pick them up. */
  replay(sel: ReplaySelection, now: number): Promise<ReplayResult>;
  stats(now: number): Promise<Stats>;
  receivers(opts: { all: boolean }): Promise<ReceiverRow[]>;
  unknownList(opts: { limit: number; station?: string | undefined }): Promise<UnknownRow[]>;
  unknownClear(): Promise<number>;
  /** Returns the new key (never stored); a running service accepts it at once. */
  keysAdd(name: string, opts: { expiresAt: number | null; now: number }): Promise<string>;
  keysList(): Promise<KeyRow[]>;
  /** False when the client had no key; a running service refuses the key at once. */
  keysRevoke(name: string): Promise<boolean>;
}

export function sqliteAdmin(db: Db): AdminStore {
  return {
    requestsList: async (opts) => requestsList(db, opts),
    requestShow: async (id) => requestShow(db, id),
    replay: async (sel, now) => replay(db, sel, now),
    stats: async (now) => stats(db, now),
    receivers: async (opts) => receivers(db, opts),
    unknownList: async (opts) => unknownList(db, opts),
    unknownClear: async () => unknownClear(db),
    keysAdd: async (name, opts) => keysAdd(db, name, opts),
    keysList: async () => keysList(db),
    keysRevoke: async (name) => keysRevoke(db, name),
  };
}
