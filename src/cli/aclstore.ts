import type { Db } from '../queue/db.ts';
import { aclAdd, aclEffective, aclList, aclRemove, listVersion } from './acl.ts';
import type { AclEntry, AclListRow, EffectiveRow, ListVersion } from './acl.ts';
import { aclImport, type ImportResult } from './aclimport.ts';
import { groupAdd, groupList, groupRemove, type GroupEntry, type GroupRow } from './groups.ts';
import { stationAdd, stationList, stationRemove, type StationRow } from './stations.ts';

// What the `acl` and `stations` commands ask of a database, whichever engine holds it
// (issue 12): the commands call this interface and never ask which engine they talk to.
// SQLite: the functions beside this file; PostgreSQL: src/cli/pg/store.ts. Both give the
// same rows for the same data, so the output (human and --json) is the same.

/** A command's database options: the SQLite file (--db) or PostgreSQL (--database-url), see src/cli/engine.ts. */

export interface AclStore {
  /** Adds or replaces one entry (and drops it from the unknown-token list), all or nothing. */
  add(e: AclEntry): Promise<void>;
  /** False when there was no such token. */
  remove(token: string): Promise<boolean>;
  list(full: boolean): Promise<AclListRow[]>;
  effective(full: boolean): Promise<EffectiveRow[]>;
  listVersion(): Promise<ListVersion>;
  /** `acl import`: streamed, all or nothing; the service decides by the old list or the new one. */
  import(file: string, opts: { replace: boolean; listVersion: number | null }): Promise<ImportResult>;
  groupAdd(g: GroupEntry): Promise<void>;
  groupRemove(name: string): Promise<{ removed: boolean; tokens: number }>;
  groupList(): Promise<GroupRow[]>;
  stationAdd(stationId: string, name: string | null): Promise<void>;
  stationRemove(stationId: string): Promise<boolean>;
  stationList(): Promise<StationRow[]>;
}

/** The SQLite file's store: today's functions, each a transaction of its own. */
export function sqliteAclStore(db: Db, nativeBinding: () => string | undefined): AclStore {
  return {
    add: async (e) => aclAdd(db, e),
    remove: async (token) => aclRemove(db, token),
    list: async (full) => aclList(db, full),
    effective: async (full) => aclEffective(db, full),
    listVersion: async () => listVersion(db),
    import: (file, opts) => aclImport(db, file, { ...opts, nativeBinding: nativeBinding() }),
    groupAdd: async (g) => groupAdd(db, g),
    groupRemove: async (name) => groupRemove(db, name),
    groupList: async () => groupList(db),
    stationAdd: async (id, name) => stationAdd(db, id, name),
    stationRemove: async (id) => stationRemove(db, id),
    stationList: async () => stationList(db),
  };
}
