import type { Db } from '../queue/db.ts';
import { listVersion, noSuchGroup } from './acl.ts';
import { readAclCsv } from './aclcsv.ts';
import { replaceList } from './aclswap.ts';
import { createAclStage } from './aclwrite.ts';
import { usageError } from './usage.ts';

// `acl import`. A full update (--replace) is built as a new generation of the list and
// switched in one short transaction (src/cli/aclswap.ts). A differential update is staged
// in this connection's temp tables, then applied in place in one write transaction
// (src/cli/aclwrite.ts). Either way the running service sees all of the file or none of it.

export interface ImportResult {
  imported: number;
  removed: number;
  version: number | null;
}

/**
 * The OCPP SendLocalList rule, one copy for both engines: a differential update must carry
 * a higher version than the list has, a full update at least the same. Refused: exit 1.
 */
export function checkVersionAgainst(version: number | null, current: number, replace: boolean): void {
  if (version === null) return;
  if (replace ? version < current : version <= current) {
    const needs = replace ? 'full update needs at least that' : 'differential update needs a higher one';
    throw new Error(`list version ${version} refused: the list is at version ${current}; a ${needs}`);
  }
}

export interface ImportOptions {
  /** Full update: every entry not in the file is removed. Otherwise differential. */
  replace: boolean;
  /** OCPP SendLocalList listVersion; null = an unversioned import (the version is kept). */
  listVersion?: number | null;
  /** Absolute path of the better-sqlite3 addon, when not in node_modules (the executable). */
  nativeBinding?: string | undefined;
}

/**
 * Imports a CSV: a full update (`replace`) or a differential one, all or nothing.
 * With a list version, the OCPP SendLocalList rule applies: a differential update must
 * carry a higher version than the list has, a full update at least the same (re-sending
 * the same full list is harmless); an older one is refused and nothing changes.
 */
export async function aclImport(
  db: Db,
  file: string,
  opts: ImportOptions,
): Promise<ImportResult> {
  const version = opts.listVersion ?? null;
  const checkVersion = () => {
    if (version !== null) checkVersionAgainst(version, listVersion(db).version, opts.replace);
  };
  const recordVersion = () => {
    if (version === null) return;
    db.prepare(`INSERT INTO acl_list_version (id, version, update_type, updated_at)
        VALUES (1, @version, @type, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
      ON CONFLICT (id) DO UPDATE SET version = excluded.version, update_type = excluded.update_type,
        updated_at = excluded.updated_at`).run({ version, type: opts.replace ? 'full' : 'differential' });
  };

  if (opts.replace) {
    // Refused before a long import, and again at the switch (another import may have moved it).
    checkVersion();
    const r = await replaceList(db, file, opts.nativeBinding, () => {
      checkVersion();
      recordVersion();
    });
    return { ...r, version };
  }

  const stage = createAclStage(db);
  try {
    let imported = 0;
    await readAclCsv(file, (r) => {
      if (!r.remove) {
        stage.put(r, r.line);
        imported++;
      } else stage.remove(r.token);
    });
    stage.flush();
    let removed = 0;
    db.transaction(() => {
      checkVersion();
      const missing = stage.missingGroup();
      if (missing) throw usageError(`CSV line ${missing.line}: ${noSuchGroup(missing.group)}`);
      removed = stage.apply({ replace: false });
      recordVersion();
    }).immediate();
    return { imported, removed, version };
  } finally {
    stage.clear();
  }
}
