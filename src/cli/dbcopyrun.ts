import type { Sql } from 'postgres';
import { ChargegateError } from '../core/errors.ts';
import type { Db } from '../queue/db.ts';
import { connectPg, redactUrl } from '../queue/pg/connect.ts';
import { migratePg } from '../queue/pg/migrate.ts';
import { COPY_TABLES, type CopyTable } from './dbtables.ts';

// The copy itself (src/cli/dbcopy.ts registers the command and loads this when it runs,
// so other commands do not load the PostgreSQL client). One read transaction on the file
// gives one consistent snapshot; rows go into PostgreSQL in batches, one INSERT … ON
// CONFLICT DO NOTHING each (its own transaction), so a run cut anywhere leaves whole
// batches behind and the next run skips what is there and continues.

interface Progress {
  table: string;
  total: number;
  copied: number;
  present: number;
}

/** The message of a failure, with the URL's password taken out wherever it appears. */
function clean(url: string, err: unknown): string {
  let msg = (err as Error)?.message ?? String(err);
  try {
    const pw = decodeURIComponent(new URL(url).password);
    if (pw) msg = msg.split(pw).join('***');
  } catch {}
  return msg;
}

export interface CopyOpts {
  batch: number;
  err: (s: string) => void;
  out: (s: string) => void;
  /** The file is in use (--live): say what the snapshot leaves out. */
  live: boolean;
}

export async function copyInto(file: Db, url: string, o: CopyOpts) {
  const where = redactUrl(url);
  const sql = connectPg(url, { max: 1, name: 'chargegate db copy' });
  const done: Progress[] = [];
  let current: Progress | null = null;
  let stopBy: string | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopBy) return;
    stopBy = sig;
    o.err(`db copy: ${sig}: stopping after the batch in hand\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const summary = (why: string) => {
    o.err(`db copy: ${why}; copied so far into ${where}:\n`);
    for (const p of [...done, ...(current ? [current] : [])]) {
      o.err(`  ${p.table} ${p.copied + p.present}/${p.total} (${p.copied} copied by this run)\n`);
    }
    o.err('db copy: run the same command again to continue: rows already in the target are skipped, ' +
      'none is copied twice\n');
  };
  try {
    try {
      await migratePg(sql);
    } catch (err) {
      throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `cannot prepare ${where}: ${clean(url, err)}`);
    }
    // One read transaction: every SELECT below sees the file as it was at the first one.
    file.exec('BEGIN');
    const now = Date.now();
    const count = (t: CopyTable) => file.prepare(`SELECT COUNT(*) AS n FROM (${t.source(now)})`).get() as { n: number };
    const totals = COPY_TABLES.map((t) => count(t).n);
    if (o.live) o.err('db copy: --live: the file is in use; requests accepted after this snapshot are not copied\n');
    for (const [i, t] of COPY_TABLES.entries()) {
      current = { table: t.name, total: totals[i]!, copied: 0, present: 0 };
      await copyTable(file, sql, t, now, current, o.batch, () => stopBy, o.err);
      if (stopBy) break;
      o.err(`db copy: ${t.name} ${current.copied + current.present}/${current.total}` +
        `${current.present ? ` (${current.present} already in the target, kept)` : ''}\n`);
      done.push(current);
      current = null;
    }
    if (stopBy) {
      summary(`interrupted by ${stopBy}`);
      throw new ChargegateError('CG_ERR_INTERNAL', 'db copy interrupted; run it again to continue');
    }
    const copied = done.reduce((s, p) => s + p.copied, 0);
    const present = done.reduce((s, p) => s + p.present, 0);
    o.out(`db copy: done: ${copied} rows copied into ${where}, ${present} already there\n`);
  } catch (err) {
    // Before the first table nothing was written: the error line says it all.
    if (!stopBy && (done.length > 0 || current)) summary(`failed: ${clean(url, err)}`);
    if (err instanceof ChargegateError) throw new ChargegateError(err.code, clean(url, err));
    throw new ChargegateError('CG_ERR_DB_UNAVAILABLE', `db copy into ${where} failed: ${clean(url, err)}`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (file.inTransaction) file.exec('COMMIT');
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

async function copyTable(
  file: Db, sql: Sql, t: CopyTable, now: number, p: Progress, batchSize: number,
  stopped: () => string | null, err: (s: string) => void,
): Promise<void> {
  const per = batchSize;
  const cols = t.columns.join(', ');
  const over = t.identity ? ' OVERRIDING SYSTEM VALUE' : '';
  // A batch is one JSON parameter turned into rows of the table's own type: one short
  // statement to parse and plan, whatever the batch size (a VALUES list of 25,000
  // parameters spent most of the copy's time in the server's parser).
  const insert = `INSERT INTO ${t.name} (${cols})${over} SELECT ${cols} ` +
    `FROM json_populate_recordset(NULL::${t.name}, $1::text::json) ON CONFLICT DO NOTHING RETURNING 1`;
  // The iterator keeps the file's statement open across the awaits below; nothing else
  // uses the connection meanwhile.
  const it = file.prepare(t.source(now)).iterate() as IterableIterator<Record<string, unknown>>;
  let lastReport = Date.now();
  try {
    for (;;) {
      if (stopped()) break;
      const rows: Array<Record<string, unknown>> = [];
      while (rows.length < per) {
        const r = it.next();
        if (r.done) break;
        rows.push(r.value);
      }
      if (rows.length === 0) break;
      const res = await sql.unsafe(insert, [JSON.stringify(rows)]);
      p.copied += res.length;
      p.present += rows.length - res.length;
      if (Date.now() - lastReport > 2000) {
        lastReport = Date.now();
        err(`db copy: ${t.name} ${p.copied + p.present}/${p.total}\n`);
      }
      if (rows.length < per) break;
    }
  } finally {
    it.return?.();
  }
  if (t.identity) {
    // New attempts written by the target's services must not take the copied ids.
    const seq = `pg_get_serial_sequence('${t.name}', 'id')`;
    await sql.unsafe(`SELECT setval(${seq}, GREATEST((SELECT MAX(id) FROM ${t.name}), 1))`);
  }
}
