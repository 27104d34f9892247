import { open } from 'node:fs/promises';
import { parse } from 'csv-parse';
import { checkExpiry, checkStation, checkToken, type AclRecord } from './acl.ts';
import { checkGroupName } from './groups.ts';
import { usageError } from './usage.ts';

// Reading an ACL CSV for `acl import`. Streamed: only the validated entries are kept, not
// the file's text and every raw record besides (a 100k-row file is parsed in ~64 KiB
// chunks). All of it is read and checked before the import's transaction begins, so a bad
// row changes nothing and the write lock is held for the writes alone.

const COLUMNS = ['token', 'stations', 'expires_at', 'blocked', 'note', 'group', 'valid_from', 'allow_offline', 'remove'];
const KNOWN = new Set(COLUMNS);
const TRUE = new Set(['1', 'true', 'yes', 'y', 'blocked']);
const FALSE = new Set(['', '0', 'false', 'no', 'n']);

function flag(rec: Record<string, string>, column: string): boolean {
  const raw = (rec[column] ?? '').toLowerCase();
  if (!TRUE.has(raw) && !FALSE.has(raw)) throw usageError(`${column} must be true or false, got ${JSON.stringify(rec[column])}`);
  return TRUE.has(raw);
}

/** One CSV record as an entry; throws a usage error naming what is wrong. */
function toRecord(rec: Record<string, string>, line: number): AclRecord {
  if (rec.token === undefined) throw usageError('missing token column');
  return {
    line,
    token: checkToken(rec.token),
    stations: (rec.stations ?? '').split(/[;\s]+/).filter(Boolean).map(checkStation),
    expires_at: rec.expires_at ? checkExpiry(rec.expires_at) : null,
    blocked: flag(rec, 'blocked'),
    note: rec.note ? rec.note : null,
    group: rec.group ? checkGroupName(rec.group) : null,
    valid_from: rec.valid_from ? checkExpiry(rec.valid_from, 'valid_from') : null,
    allow_offline: flag(rec, 'allow_offline'),
    remove: flag(rec, 'remove'),
  };
}

/**
 * Reads an ACL CSV: a header row naming `token` and optionally `stations` (separated by
 * `;` or spaces; empty = every station), `expires_at`, `blocked`, `note`, `group`,
 * `valid_from`, `allow_offline`, and `remove` (differential updates: true removes the
 * token, OCPP's entry without IdTagInfo). A bad row names its line and nothing is imported.
 */
export async function readAclCsv(file: string): Promise<AclRecord[]> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw usageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const parser = parse({ columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()), skip_empty_lines: true, trim: true, bom: true });
  const input = handle.createReadStream();
  input.on('error', (err) => parser.destroy(usageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
  input.pipe(parser);
  const entries: AclRecord[] = [];
  try {
    for await (const rec of parser as AsyncIterable<Record<string, string>>) {
      const line = entries.length + 2;
      // Every record has the header's keys: checking the first checks the header.
      if (entries.length === 0) for (const k of Object.keys(rec)) if (!KNOWN.has(k)) throw usageError(`CSV column "${k}" is unknown (expected ${COLUMNS.join(', ')})`);
      try {
        entries.push(toRecord(rec, line));
      } catch (err) {
        throw usageError(`CSV line ${line}: ${(err as Error).message}`);
      }
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'CG_ERR_USAGE') throw err;
    throw usageError(`cannot read CSV: ${(err as Error).message}`);
  } finally {
    input.destroy();
  }
  return entries;
}
