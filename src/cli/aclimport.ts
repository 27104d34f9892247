import type { Db } from '../queue/db.ts';
import { listVersion, noSuchGroup } from './acl.ts';
import { readAclCsv } from './aclcsv.ts';
import { createAclStage } from './aclwrite.ts';
import { usageError } from './usage.ts';

// `acl import`: the CSV is streamed into this connection's staging tables, then applied
// in one write transaction, so the running service sees all of the file or none of it
// and waits for the lock only while the staged list is applied (src/cli/aclwrite.ts).

export interface ImportOptions {
  /** Full update: every entry not in the file is removed. Otherwise differential. */
  replace: boolean;
  /** OCPP SendLocalList listVersion; null = an unversioned import (the version is kept). */
  listVersion?: number | null;
}

/**
 * Imports a CSV in one transaction: a full update (`replace`) or a differential one.
 * With a list version, the OCPP SendLocalList rule applies: a differential update must
 * carry a higher version than the list has, a full update at least the same (re-sending
 * the same full list is harmless); an older one is refused and nothing changes.
 */
export async function aclImport(
  db: Db,
  file: string,
  opts: ImportOptions,
): Promise<{ imported: number; removed: number; version: number | null }> {
  const stage = createAclStage(db);
  try {
    let imported = 0;
    let firstRemoveLine: number | null = null;
    await readAclCsv(file, (r) => {
      if (!r.remove) {
        stage.put(r, r.line);
        imported++;
      } else if (opts.replace) firstRemoveLine ??= r.line;
      else stage.remove(r.token);
    });
    if (firstRemoveLine !== null) {
      throw usageError(`CSV line ${firstRemoveLine}: remove rows belong to a differential update, not --replace`);
    }
    stage.flush();

    const version = opts.listVersion ?? null;
    let removed = 0;
    db.transaction(() => {
      if (version !== null) {
        const current = listVersion(db).version;
        if (opts.replace ? version < current : version <= current) {
          const needs = opts.replace ? 'full update needs at least that' : 'differential update needs a higher one';
          throw new Error(`list version ${version} refused: the list is at version ${current}; a ${needs}`);
        }
      }
      const missing = stage.missingGroup();
      if (missing) throw usageError(`CSV line ${missing.line}: ${noSuchGroup(missing.group)}`);
      removed = stage.apply({ replace: opts.replace });
      if (version !== null) {
        db.prepare(`INSERT INTO acl_list_version (id, version, update_type, updated_at)
            VALUES (1, @version, @type, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
          ON CONFLICT (id) DO UPDATE SET version = excluded.version, update_type = excluded.update_type,
            updated_at = excluded.updated_at`).run({
          version,
          type: opts.replace ? 'full' : 'differential',
        });
      }
    }).immediate();
    return { imported, removed, version };
  } finally {
    stage.clear();
  }
}
