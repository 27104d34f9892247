import { open } from 'node:fs/promises';
import { parse } from 'csv-parse';
import { checkExpiry, checkStation, checkToken, checkTokenType, type AclRecord } from './acl.ts';
import { checkGroupName } from './groups.ts';
import { usageError } from './usage.ts';
import { fsReason } from '../core/fsutil.ts';

// Reading an ACL CSV for `acl import`, streamed: each row is checked and handed on as it
// is parsed (a 100k-row file is read in 64 KiB chunks), so neither the file's text nor its
// rows are ever all in memory.

const COLUMNS = ['token', 'stations', 'expires_at', 'blocked', 'note', 'group', 'valid_from', 'allow_offline', 'token_type', 'remove'];
const KNOWN = new Set(COLUMNS);
const TRUE = new Set(['1', 'true', 'yes', 'y', 'blocked']);
const FALSE = new Set(['', '0', 'false', 'no', 'n']);

function flag(rec: Record<string, string>, column: string): boolean {
  const raw = (rec[column] ?? '').toLowerCase();
  if (!TRUE.has(raw) && !FALSE.has(raw)) {
    throw usageError(`${column} must be true or false, got ${JSON.stringify(rec[column])}`);
  }
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
    token_type: rec.token_type ? checkTokenType(rec.token_type) : null,
    remove: flag(rec, 'remove'),
  };
}

/**
 * Reads an ACL CSV: a header row naming `token` and optionally `stations` (separated by
 * `;` or spaces; empty = every station), `expires_at`, `blocked`, `note`, `group`,
 * `valid_from`, `allow_offline`, `token_type` (empty = any type), and `remove` (differential updates: true removes the
 * token, OCPP's entry without IdTagInfo). Each row goes to `onRecord` once checked; a bad
 * row stops the read with a usage error naming its line. When `onRecord` returns a promise,
 * the read waits for it. Resolves to the number of rows.
 */
export async function readAclCsv(file: string, onRecord: (r: AclRecord) => void | Promise<void>): Promise<number> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw usageError(`cannot read ${file}: ${fsReason(err)}`);
  }
  const parser = parse({
    columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()),
    skip_empty_lines: true,
    trim: true,
    bom: true,
  });
  const input = handle.createReadStream();
  input.on('error', (err: NodeJS.ErrnoException) => {
    parser.destroy(usageError(`cannot read ${file}: ${fsReason(err)}`));
  });
  input.pipe(parser);
  let rows = 0;
  // What onRecord throws (a staging write) is passed on as it is, not as a CSV error.
  let inCallback = false;
  try {
    for await (const rec of parser as AsyncIterable<Record<string, string>>) {
      const line = rows + 2;
      // Every record has the header's keys: checking the first checks the header.
      if (rows === 0) {
        for (const k of Object.keys(rec)) {
          if (!KNOWN.has(k)) throw usageError(`CSV column "${k}" is unknown (expected ${COLUMNS.join(', ')})`);
        }
      }
      let record: AclRecord;
      try {
        record = toRecord(rec, line);
      } catch (err) {
        throw usageError(`CSV line ${line}: ${(err as Error).message}`);
      }
      inCallback = true;
      // A promise: the receiver wrote a chunk and waits before taking the next rows.
      const wait = onRecord(record);
      if (wait) await wait;
      inCallback = false;
      rows++;
    }
  } catch (err) {
    if (inCallback || (err as { code?: string }).code === 'CG_ERR_USAGE') throw err;
    throw usageError(`cannot read CSV: ${(err as Error).message}`);
  } finally {
    input.destroy();
  }
  return rows;
}
