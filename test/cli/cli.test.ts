import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cli } from '../support/cli.ts';
import { tempDir } from '../support/tmp.ts';

const T1 = 'ABCD-efgh1234567890_~valid.token';
const T2 = 'second-token-0123456789';
const S1 = '123E4567-E89B-12D3-A456-426614174000';


describe('cli', () => {
  it('acl add/list/remove on the db file, tokens masked unless --full', async (t) => {
    const db = join(tempDir(t), 'sub', 'c.db');
    assert.equal((await cli(['acl', 'add', T1, '--station', S1, '--expires', '2030-01-01', '--note', 'fleet 7', '--db', db])).code, 0);
    assert.equal((await cli(['acl', 'add', T2, '--blocked'], { DB_PATH: db })).code, 0);
    const list = await cli(['acl', 'list', '--json', '--db', db]);
    assert.deepEqual(JSON.parse(list.out), [
      { token: 'ABCD…oken', stations: [S1.toLowerCase()], all_stations: false, expires_at: '2030-01-01T00:00:00.000Z', blocked: false, note: 'fleet 7' },
      { token: 'seco…6789', stations: [], all_stations: true, expires_at: null, blocked: true, note: null },
    ]);
    const human = await cli(['acl', 'list', '--db', db]);
    assert.match(human.out, /^TOKEN\s+STATIONS\s+EXPIRES_AT\s+BLOCKED\s+NOTE/);
    assert.match(human.out, /seco…6789\s+\*\s/, 'the table still shows * for every station');
    assert.ok(!human.out.includes(T1));
    assert.ok((await cli(['acl', 'list', '--full', '--db', db])).out.includes(T1));
    assert.equal((await cli(['acl', 'remove', T2, '--db', db])).code, 0);
    const again = await cli(['acl', 'remove', T2, '--db', db]);
    assert.equal(again.code, 1);
    assert.match(again.err, /no such token/);
  });

  it('acl import is all-or-nothing and --replace drops entries not in the file', async (t) => {
    const dir = tempDir(t);
    const db = join(dir, 'c.db');
    await cli(['acl', 'add', T2, '--db', db]);
    const good = join(dir, 'good.csv');
    writeFileSync(good, `token,stations,expires_at,blocked,note\n${T1},${S1};9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab,,false,"a, b"\n`);
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, `token,blocked\nthird-token-0123456789,no\nshort,no\n`);
    const r = await cli(['acl', 'import', bad, '--db', db]);
    assert.equal(r.code, 2);
    assert.match(r.err, /CSV line 3: invalid token/);
    assert.equal(JSON.parse((await cli(['acl', 'list', '--json', '--db', db])).out).length, 1, 'nothing imported from a bad file');
    assert.equal((await cli(['acl', 'import', good, '--replace', '--db', db])).out, 'acl: imported 1, removed 1\n');
    const rows = JSON.parse((await cli(['acl', 'list', '--json', '--full', '--db', db])).out);
    assert.deepEqual(rows.map((x: { token: string; stations: string[]; note: string }) => [x.token, x.stations.length, x.note]), [[T1, 2, 'a, b']]);
  });

  it('stations add/list/remove', async (t) => {
    const db = join(tempDir(t), 'c.db');
    assert.equal((await cli(['stations', 'add', S1, '--name', 'bay 1', '--db', db])).code, 0);
    const list = JSON.parse((await cli(['stations', 'list', '--json', '--db', db])).out);
    assert.equal(list[0].station_id, S1.toLowerCase());
    assert.equal(list[0].name, 'bay 1');
    assert.equal((await cli(['stations', 'remove', S1, '--db', db])).code, 0);
    assert.equal((await cli(['stations', 'remove', S1, '--db', db])).code, 1);
  });

  it('bad usage exits 2 with a one-line message; help and version exit 0', async (t) => {
    const db = join(tempDir(t), 'c.db');
    for (const args of [['acl', 'add', 'short', '--db', db], ['acl', 'add', T1, '--station', 'nope', '--db', db], ['acl', 'add', T1, '--expires', 'tomorrow', '--db', db], ['stations', 'add', 'x', '--db', db], ['acl', 'frobnicate'], ['--bogus'], ['serve', '--port', 'abc']]) {
      const r = await cli(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.err.trim().split('\n').length, 1, `${args.join(' ')}: ${r.err}`);
    }
    assert.match((await cli(['serve', '--port', 'abc'])).err, /--port/);
    assert.match((await cli(['serve'], { QUEUE_MAX_SIZE: '0' })).err, /QUEUE_MAX_SIZE/);
    const v = await cli(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.out, /chargegate 9\.9\.9 \(node v24\./);
    const h = await cli(['acl', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.out, /import/);
  });
});
