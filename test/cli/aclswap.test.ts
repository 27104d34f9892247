import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { tryLock } from '../../src/queue/lock.ts';
import { decide } from '../../workers/decide.ts';
import { cli } from '../support/cli.ts';
import { processDir, runCli, startService } from '../support/process.ts';
import { tempDir } from '../support/tmp.ts';

// `acl import --replace` builds the next generation of the list beside the one in force and
// switches acl_current in one short transaction (src/cli/aclswap.ts). Here: real CLI
// processes and a real service on one SQLite file, read meanwhile as the decision reads it.

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const oldTok = (i: number) => `old-card-${String(i).padStart(12, '0')}`;
const newTok = (i: number) => `new-card-${String(i).padStart(12, '0')}`;

/** A CSV of n entries; every third is scoped to S1. */
function listFile(dir: string, name: string, n: number, tok: (i: number) => string, tail: string[] = []): string {
  const path = join(dir, name);
  const lines = ['token,stations,note'];
  for (let i = 0; i < n; i++) lines.push(`${tok(i)},${i % 3 === 0 ? S1 : ''},row ${i}`);
  writeFileSync(path, [...lines, ...tail].join('\n') + '\n');
  return path;
}

const scoped = (n: number) => Math.ceil(n / 3);

describe('acl import --replace of a large list beside a running service', () => {
  const title = 'readers and decisions see the old list or the new one, never a mix; the service keeps accepting';
  it(title, { timeout: 180_000 }, async (t) => {
    const OLD = 20_000;
    const NEW = 80_000;
    const dir = processDir(t);
    const dbPath = join(dir, 'cg.db');
    const svc = await startService(t, { dbPath });
    const oldFile = listFile(dir, 'old.csv', OLD, oldTok);
    const first = await runCli(t, ['acl', 'import', oldFile, '--replace', '--db', dbPath], { timeoutMs: 60_000 });
    assert.equal(first.stdout, `acl: imported ${OLD}, removed 0\n`, first.stderr);

    const reader = new Database(dbPath, { readonly: true });
    t.after(() => reader.close());
    const snapshot = reader.transaction(() => ({
      old: reader.prepare("SELECT COUNT(*) FROM acl WHERE token LIKE 'old-card-%'").pluck().get() as number,
      new: reader.prepare("SELECT COUNT(*) FROM acl WHERE token LIKE 'new-card-%'").pluck().get() as number,
      stations: reader.prepare('SELECT COUNT(*) FROM acl_stations').pluck().get() as number,
      all: reader.prepare('SELECT COUNT(*) FROM acl').pluck().get() as number,
      building: reader.prepare('SELECT COUNT(*) FROM acl_rows WHERE gen <> (SELECT gen FROM acl_current)').pluck()
        .get() as number,
    }));
    const OLD_STATE = { old: OLD, new: 0, stations: scoped(OLD), all: OLD };
    const NEW_STATE = { old: 0, new: NEW, stations: scoped(NEW), all: NEW };
    // One decide() batch is one read transaction, as in the worker threads: tokens of both
    // lists, from their first, middle and last rows.
    const sample = [0, 1, OLD / 2, OLD - 1].map(oldTok).concat([0, 1, NEW / 2, NEW - 1].map(newTok));
    const items = sample.map((token, i) => ({
      id: `d${i}`, station_id: S1, driver_token: token, token_type: 'RFID' as const,
    }));
    const verdicts = () => decide({ dbPath, now: Date.now(), items })!.map((d) => d.status).join(',');
    const OLD_VERDICTS = [...Array(4).fill('allowed'), ...Array(4).fill('not_allowed')].join(',');
    const NEW_VERDICTS = [...Array(4).fill('not_allowed'), ...Array(4).fill('allowed')].join(',');
    assert.equal(verdicts(), OLD_VERDICTS);

    const newFile = listFile(dir, 'new.csv', NEW, newTok);
    const importing = runCli(t, ['acl', 'import', newFile, '--replace', '--db', dbPath], { timeoutMs: 150_000 });
    let done = false;
    void importing.finally(() => (done = true));

    let reads = 0;
    let readsWhileBuilding = 0;
    const readLoop = (async () => {
      while (!done) {
        const s = snapshot();
        const { building, ...seen } = s;
        assert.ok(
          JSON.stringify(seen) === JSON.stringify(OLD_STATE) || JSON.stringify(seen) === JSON.stringify(NEW_STATE),
          `a reader saw a mix: ${JSON.stringify(s)}`,
        );
        const v = verdicts();
        assert.ok(v === OLD_VERDICTS || v === NEW_VERDICTS, `one decision batch saw a mix: ${v}`);
        reads++;
        if (building > 0 && seen.all === OLD) readsWhileBuilding++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const statuses = new Map<number, number>();
    let postsWhileImporting = 0;
    const postLoop = (async () => {
      for (let i = 0; !done; i++) {
        const res = await fetch(`${svc.base}/api/v1/charging-session`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            station_id: S1, driver_token: i % 2 ? oldTok(i) : newTok(i), callback_url: 'http://127.0.0.1:9/cb',
          }),
        });
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (!done) postsWhileImporting++;
      }
    })();

    const r = await importing;
    await Promise.all([readLoop, postLoop]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `acl: imported ${NEW}, removed ${OLD}\n`);
    assert.ok(readsWhileBuilding > 0, `the reads overlapped the build (${reads} reads, none while it was half built)`);
    assert.ok(postsWhileImporting > 0);
    assert.deepEqual([...statuses.keys()], [202], `every POST during the import got 202: ${JSON.stringify([...statuses])}`);

    const { building, ...after } = snapshot();
    assert.deepEqual(after, NEW_STATE);
    assert.equal(building, 0, 'the old generation is removed');
    assert.equal(verdicts(), NEW_VERDICTS);
  });
});

describe('acl import --replace: nothing changes unless the whole file is good', () => {
  const setup = async (t: Parameters<typeof tempDir>[0]) => {
    const dir = tempDir(t);
    const db = join(dir, 'cg.db');
    const oldFile = listFile(dir, 'old.csv', 500, oldTok);
    const first = await cli(['acl', 'import', oldFile, '--replace', '--list-version', '3', '--db', db]);
    assert.equal(first.out, 'acl: imported 500, removed 0, list version 3\n', first.err);
    const rows = () => {
      const c = new Database(db, { readonly: true });
      try {
        return {
          list: c.prepare('SELECT token, note FROM acl ORDER BY token').all(),
          stations: c.prepare('SELECT COUNT(*) FROM acl_stations').pluck().get(),
          version: c.prepare('SELECT version FROM acl_list_version').pluck().get(),
          gens: c.prepare('SELECT DISTINCT gen FROM acl_rows').pluck().all(),
          current: c.prepare('SELECT gen FROM acl_current').pluck().get(),
        };
      } finally {
        c.close();
      }
    };
    return { dir, db, rows, before: rows() };
  };

  const late = 'a bad line at row 150,001 of a streamed file: refused with its line, the list as it was, no rows left';
  it(late, { timeout: 120_000 }, async (t) => {
    const { dir, db, rows, before } = await setup(t);
    const N = 150_000;
    const file = listFile(dir, 'bad.csv', N, newTok, [`${newTok(N)},not-a-uuid,late`, `${newTok(N + 1)},,after`]);
    const r = await cli(['acl', 'import', file, '--replace', '--db', db]);
    assert.equal(r.code, 2);
    assert.equal(r.err, `chargegate: CSV line ${N + 2}: invalid station id "not-a-uuid": must be a UUID\n`);
    assert.deepEqual(rows(), before);
    assert.deepEqual(before.gens, [before.current], 'only the generation in force has rows');
  });

  it('an older list version, a group that does not exist, a remove row: nothing changes', async (t) => {
    const { dir, db, rows, before } = await setup(t);
    const file = listFile(dir, 'new.csv', 2_000, newTok);
    const older = await cli(['acl', 'import', file, '--replace', '--list-version', '2', '--db', db]);
    assert.equal(older.code, 1);
    assert.match(older.err, /list version 2 refused: the list is at version 3; a full update needs at least that/);
    assert.deepEqual(rows(), before);

    const grouped = listFile(dir, 'grouped.csv', 0, newTok, []);
    writeFileSync(grouped, `token,group\n${newTok(1)},\n${newTok(2)},nosuch\n`);
    const g = await cli(['acl', 'import', grouped, '--replace', '--db', db]);
    assert.equal(g.code, 2);
    assert.equal(g.err, 'chargegate: CSV line 3: no such group "nosuch": create it with "acl group add"\n');
    assert.deepEqual(rows(), before);

    writeFileSync(grouped, `token,remove\n${newTok(1)},\n${newTok(2)},true\n`);
    const rm = await cli(['acl', 'import', grouped, '--replace', '--db', db]);
    assert.equal(rm.code, 2);
    assert.equal(rm.err, 'chargegate: CSV line 3: remove rows belong to a differential update, not --replace\n');
    assert.deepEqual(rows(), before);
  });

  it('one import at a time; rows an import left when it died are removed by the next, unseen meanwhile', async (t) => {
    const { dir, db, rows, before } = await setup(t);
    const file = listFile(dir, 'new.csv', 10, newTok);

    const held = tryLock(`${db}.acl-import`, { waitMs: 0 });
    assert.ok(held);
    const busy = await cli(['acl', 'import', file, '--replace', '--db', db]);
    held.release();
    assert.equal(busy.code, 2);
    assert.equal(busy.err,
      'chargegate: another acl import is running on this database; run this one when it has finished\n');
    assert.deepEqual(rows(), before);

    // What an import killed halfway leaves: rows of a generation nobody reads.
    const w = new Database(db);
    w.pragma('foreign_keys = ON');
    const gen = (before.current as number) + 1;
    const dead = w.prepare('INSERT INTO acl_rows (gen, token) VALUES (?, ?)');
    for (let i = 0; i < 3000; i++) dead.run(gen, `dead-card-${String(i).padStart(12, '0')}`);
    w.prepare('INSERT INTO acl_station_rows (gen, token, station_id) VALUES (?, ?, ?)')
      .run(gen, 'dead-card-000000000000', S1);
    await cli(['acl', 'group', 'add', 'fleet', '--db', db]);
    w.prepare("UPDATE acl_rows SET group_name = 'fleet' WHERE gen = ? AND token = 'dead-card-000000000001'").run(gen);
    w.close();
    assert.deepEqual(rows().list, before.list, 'not seen by readers');
    const inUse = await cli(['acl', 'group', 'remove', 'fleet', '--db', db]);
    assert.equal(inUse.err,
      'chargegate: group fleet is used by an acl import in progress; remove it when the import has finished\n');

    const r = await cli(['acl', 'import', file, '--replace', '--db', db]);
    assert.equal(r.out, 'acl: imported 10, removed 500\n', r.err);
    const after = rows();
    const tokens = after.list.map((x) => (x as { token: string }).token);
    assert.deepEqual(tokens, Array.from({ length: 10 }, (_, i) => newTok(i)));
    assert.deepEqual(after.gens, [after.current]);
    assert.equal(after.stations, 4);
    assert.equal((await cli(['acl', 'group', 'remove', 'fleet', '--db', db])).out, 'acl: group removed\n');
  });
});
