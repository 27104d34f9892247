// `chargegate acl import --replace` on PostgreSQL against the same import on SQLite, in one
// run, alternating engine by engine, round by round (the box is shared: only the ratio holds):
//
//   npx node --import tsx bench/aclimportpg.ts [--rows 10000] [--rounds 5]
//
// Each round and engine: a fresh database (a SQLite file; a throwaway PostgreSQL database at
// CHARGEGATE_TEST_PG or the local server), the real CLI in a child process under
// /usr/bin/time (wall, peak RSS), importing a CSV of --rows entries (every third scoped to a
// station) into the empty list, then over itself (the full update of an unchanged list).
// The peak RSS of `acl list-version` on the same database is the CLI's own floor.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { PG_ADMIN_URL } from '../test/support/pgadmin.ts';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '5' } } });
const ROWS = Number(values.rows);
const ROUNDS = Number(values.rounds);
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const ROOT = resolve(import.meta.dirname, '..');

const dir = mkdtempSync(join(tmpdir(), 'cg-bench-aclpg-'));
const csv = join(dir, 'acl.csv');
const lines = ['token,stations,expires_at,blocked,note'];
for (let i = 0; i < ROWS; i++) lines.push(`bench-import-${String(i).padStart(12, '0')},${i % 3 === 0 ? STATION : ''},,false,row ${i}`);
writeFileSync(csv, lines.join('\n') + '\n');
lines.length = 0;

interface Run { wallS: number; rssMiB: number }

async function cliRun(args: string[]): Promise<Run> {
  const timeFile = join(dir, 'time.txt');
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', timeFile, process.execPath, join(ROOT, 'bin/chargegate.ts'), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`chargegate ${args.join(' ')} exited ${code}: ${out}`);
  const wallS = (performance.now() - t0) / 1000;
  return { wallS, rssMiB: Number(readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)) / 1024 };
}

/** A fresh database; the flags naming it, and how to drop it. */
async function fresh(engine: 'sqlite' | 'postgres'): Promise<{ flags: string[]; drop: () => Promise<void> }> {
  if (engine === 'sqlite') {
    const path = join(dir, `r-${randomBytes(4).toString('hex')}.db`);
    return { flags: ['--db', path], drop: async () => rmSync(path, { force: true }) };
  }
  const name = `cg_bench_acl_${randomBytes(5).toString('hex')}`;
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    flags: ['--database-url', u.toString()],
    drop: async () => {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

const results: Record<string, Record<string, Run[]>> = { sqlite: {}, postgres: {} };
const record = (engine: string, what: string, r: Run) => {
  (results[engine]![what] ??= []).push(r);
  console.log(`${engine.padEnd(8)} ${what.padEnd(12)} wall ${r.wallS.toFixed(2)} s, peak RSS ${r.rssMiB.toFixed(0)} MiB`);
};

try {
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which engine goes first, so neither always runs on the warmer (or busier) box.
    const order: Array<'sqlite' | 'postgres'> = round % 2 === 0 ? ['sqlite', 'postgres'] : ['postgres', 'sqlite'];
    for (const engine of order) {
      const db = await fresh(engine);
      try {
        record(engine, 'empty list', await cliRun(['acl', 'import', csv, '--replace', ...db.flags]));
        record(engine, 'over itself', await cliRun(['acl', 'import', csv, '--replace', ...db.flags]));
        record(engine, 'list-version', await cliRun(['acl', 'list-version', ...db.flags]));
      } finally {
        await db.drop();
      }
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  console.log(`\n${ROWS} rows, ${ROUNDS} rounds, medians (PostgreSQL / SQLite):`);
  for (const what of ['empty list', 'over itself', 'list-version']) {
    const pg = results.postgres![what]!;
    const lite = results.sqlite![what]!;
    const [pw, sw] = [median(pg.map((r) => r.wallS)), median(lite.map((r) => r.wallS))];
    const [pr, sr] = [median(pg.map((r) => r.rssMiB)), median(lite.map((r) => r.rssMiB))];
    console.log(`${what.padEnd(12)} wall ${pw.toFixed(2)} s / ${sw.toFixed(2)} s = ${(pw / sw).toFixed(2)}x; ` +
      `peak RSS ${pr.toFixed(0)} / ${sr.toFixed(0)} MiB (max ${Math.max(...pg.map((r) => r.rssMiB)).toFixed(0)} / ` +
      `${Math.max(...lite.map((r) => r.rssMiB)).toFixed(0)})`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
