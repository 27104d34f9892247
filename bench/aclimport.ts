// `chargegate acl import` as an admin runs it, measured from outside:
//
//   npx node --import tsx bench/aclimport.ts [--rows 10000] [--replace]
//
// Writes a CSV of --rows entries (every third scoped to a station, like
// test/faults/admin.test.ts), runs the real CLI in a child process under /usr/bin/time
// (peak RSS), and meanwhile probes the database from this process with BEGIN IMMEDIATE
// and no busy timeout, about once a millisecond: the longest stretch in which the probe
// could not get the write lock is how long the import held it (what the serving process
// would wait for). Two imports of the same file: into an empty list, then over it.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { openDb } from '../src/queue/db.ts';
import { migrate } from '../src/queue/migrate.ts';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '10000' }, replace: { type: 'boolean', default: false } } });
const ROWS = Number(values.rows);
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const ROOT = resolve(import.meta.dirname, '..');

const dir = mkdtempSync(join(tmpdir(), 'cg-bench-acl-'));
const dbPath = join(dir, 'cg.db');
const csv = join(dir, 'acl.csv');
const lines = ['token,stations,expires_at,blocked,note'];
for (let i = 0; i < ROWS; i++) lines.push(`bench-import-${String(i).padStart(12, '0')},${i % 3 === 0 ? STATION : ''},,false,row ${i}`);
writeFileSync(csv, lines.join('\n') + '\n');

const probe = openDb(dbPath, { busyTimeoutMs: 0, createDir: true });
migrate(probe);
const begin = probe.prepare('BEGIN IMMEDIATE');
const rollback = probe.prepare('ROLLBACK');

async function importOnce(label: string): Promise<void> {
  const timeFile = join(dir, 'time.txt');
  const args = ['-f', '%M', '-o', timeFile, process.execPath, join(ROOT, 'bin/chargegate.ts'), 'acl', 'import', csv, '--db', dbPath];
  if (values.replace) args.push('--replace');
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b));
  let running = true;
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => ((running = false), r(code))));
  let longest = 0;
  let busySince: number | null = null;
  while (running) {
    const now = performance.now();
    try {
      begin.run();
      rollback.run();
      if (busySince !== null) longest = Math.max(longest, now - busySince);
      busySince = null;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
      busySince ??= now;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const code = await exited;
  if (code !== 0) throw new Error(`the import exited ${code}`);
  const wall = performance.now() - t0;
  const rssMiB = Number(readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)) / 1024;
  console.log(
    `${label.padEnd(14)} ${ROWS} rows${values.replace ? ' --replace' : ''}: exit ${code}, write lock held ${longest.toFixed(0)} ms ` +
      `(longest stretch the probe was refused), wall ${wall.toFixed(0)} ms, peak RSS ${rssMiB.toFixed(0)} MiB; ${out.trim()}`,
  );
}

try {
  await importOnce('empty list');
  await importOnce('over itself');
} finally {
  probe.close();
  rmSync(dir, { recursive: true, force: true });
}
