// Group-commit cost per op: the committer's own work around each op, without the fsync.
//
//   npx node --import tsx bench/committer.ts [--batch 200] [--rounds 300]
//
// Runs the real committer on a real SQLite file with synchronous=OFF (the fsync is paid
// once per group whatever the ops do, so it would only hide the per-op part), with ops
// that do nothing and ops that insert one row. Prints the transaction's time per op
// (median over the rounds), measured by the committer's own onCommit figure.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCommitter } from '../src/queue/committer.ts';
import { openDb } from '../src/queue/db.ts';

const { values } = parseArgs({ options: { batch: { type: 'string', default: '200' }, rounds: { type: 'string', default: '300' } } });
const BATCH = Number(values.batch);
const ROUNDS = Number(values.rounds);

const dir = mkdtempSync(join(tmpdir(), 'cg-bench-commit-'));
const db = openDb(join(dir, 'bench.db'), { busyTimeoutMs: 1000 });
db.pragma('synchronous = OFF');
db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
const insert = db.prepare('INSERT INTO t (v) VALUES (?)');

const samples: number[] = [];
const committer = createCommitter(db, { onCommit: (ops, ms) => samples.push((ms * 1000) / ops) });

async function measure(name: string, fn: () => unknown, batch: number): Promise<void> {
  const ops = new Array<Promise<unknown>>(batch);
  for (let warm = 0; warm < 2; warm++) {
    samples.length = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < batch; i++) ops[i] = committer.run(fn);
      await Promise.all(ops);
    }
  }
  const sorted = samples.slice().sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(2);
  console.log(`${name.padEnd(28)} batch ${String(batch).padStart(4)}: p50 ${at(50)} µs/op, p90 ${at(90)} µs/op`);
}

try {
  for (const batch of [1, BATCH]) {
    await measure('op that does nothing', () => undefined, batch);
    await measure('op that inserts one row', () => insert.run('x'), batch);
  }
} finally {
  db.close();
  rmSync(dir, { recursive: true, force: true });
}
