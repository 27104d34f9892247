import type { Sql } from 'postgres';
import type { AclStore } from '../aclstore.ts';
import { pgAclAdd, pgAclEffective, pgAclList, pgAclRemove, pgListVersion } from './acl.ts';
import { pgAclImport } from './aclimport.ts';
import { pgGroupAdd, pgGroupList, pgGroupRemove } from './groups.ts';
import { pgStationAdd, pgStationList, pgStationRemove } from './stations.ts';

// The `acl` and `stations` commands on PostgreSQL (src/cli/aclstore.ts has the interface
// and the SQLite side). Loaded only when a command names PostgreSQL.

export function pgAclStore(sql: Sql): AclStore {
  return {
    add: (e) => pgAclAdd(sql, e),
    remove: (token) => pgAclRemove(sql, token),
    list: (full) => pgAclList(sql, full),
    effective: (full) => pgAclEffective(sql, full),
    listVersion: () => pgListVersion(sql),
    import: (file, opts) => pgAclImport(sql, file, opts),
    groupAdd: (g) => pgGroupAdd(sql, g),
    groupRemove: (name) => pgGroupRemove(sql, name),
    groupList: () => pgGroupList(sql),
    stationAdd: (id, name) => pgStationAdd(sql, id, name),
    stationRemove: (id) => pgStationRemove(sql, id),
    stationList: () => pgStationList(sql),
  };
}
