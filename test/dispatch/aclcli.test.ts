import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hashToken } from '../../src/core/token.ts';
import { cli } from '../support/cli.ts';
import { ENGINES, type AppDatabase, type Engine } from '../support/engines.ts';
import { tempDir } from '../support/tmp.ts';

// The ACL model as an admin scripts it: groups, validity windows, allow_offline, each
// token's effective state, and versioned full / differential imports (OCPP SendLocalList).
// The same cases on both engines: `--db <file>` or `--database-url <PostgreSQL>`.

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const S2 = '9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab';
const T1 = 'fleet-card-0000000000000001';
const T2 = 'fleet-card-0000000000000002';
const T3 = 'other-card-0000000000000003';


const json = async (args: string[]) => JSON.parse((await cli([...args, '--json'])).out);

/** A fresh database on `engine` (dropped after the test) and the flag that names it to the CLI. */
async function database(t: { after: (fn: () => unknown) => void }, engine: Engine): Promise<{ db: string[]; data: AppDatabase }> {
  const data = await engine.appDatabase();
  t.after(data.drop);
  const url = data.env.DATABASE_URL;
  return { data, db: url ? ['--database-url', url] : ['--db', data.env.DB_PATH!] };
}

for (const engine of ENGINES) {
  describe(`acl commands on ${engine.name}`, { skip: engine.skip }, () => {
    describe('acl groups and effective state (CLI)', () => {
      it('a group scopes, blocks and expires its tokens; acl effective shows the result', async (t) => {
        const { db } = await database(t, engine);
        assert.equal((await cli(['acl', 'group', 'add', 'fleet', '--station', S1, '--station', S2, '--note', 'depot', ...db])).code, 0);
        assert.equal((await cli(['acl', 'add', T1, '--group', 'fleet', '--station', S2, '--valid-from', '2020-01-01', ...db])).code, 0);
        assert.equal((await cli(['acl', 'add', T2, '--group', 'fleet', '--allow-offline', ...db])).code, 0);
        const missing = await cli(['acl', 'add', T3, '--group', 'nope', ...db]);
        assert.equal(missing.code, 2);
        assert.match(missing.err, /no such group "nope"/);
        assert.equal((await cli(['acl', 'add', T3, '--group', 'bad name', ...db])).code, 2);

        assert.deepEqual(await json(['acl', 'effective', '--full', ...db]), [
          { token: T1, group: 'fleet', state: 'active', stations: [S2], all_stations: false, valid_from: '2020-01-01T00:00:00.000Z', expires_at: null, allow_offline: false, note: null, token_type: '*' },
          { token: T2, group: 'fleet', state: 'active', stations: [S1, S2], all_stations: false, valid_from: null, expires_at: null, allow_offline: true, note: null, token_type: '*' },
        ]);
        assert.deepEqual(await json(['acl', 'group', 'list', ...db]), [
          { name: 'fleet', tokens: 2, stations: [S1, S2], all_stations: false, blocked: false, valid_from: null, expires_at: null, allow_offline: false, note: 'depot' },
        ]);

        assert.equal((await cli(['acl', 'group', 'add', 'fleet', '--blocked', ...db])).code, 0);
        const states = (await json(['acl', 'effective', ...db])) as Array<{ token: string; state: string; stations: string[]; all_stations: boolean }>;
        assert.deepEqual(states.map((r) => [r.token, r.state, r.stations, r.all_stations]), [['flee…0001', 'group_blocked', [S2], false], ['flee…0002', 'group_blocked', [], true]]);
        assert.equal((await cli(['acl', 'group', 'add', 'fleet', '--expires', '2021-01-01T00:00:00Z', ...db])).code, 0);
        assert.ok(((await json(['acl', 'effective', ...db])) as Array<{ state: string }>).every((r) => r.state === 'group_expired'));

        const busy = await cli(['acl', 'group', 'remove', 'fleet', ...db]);
        assert.equal(busy.code, 1);
        assert.match(busy.err, /still has 2 token/);
        await cli(['acl', 'remove', T1, ...db]);
        await cli(['acl', 'remove', T2, ...db]);
        assert.equal((await cli(['acl', 'group', 'remove', 'fleet', ...db])).code, 0);
        assert.equal((await cli(['acl', 'group', 'remove', 'fleet', ...db])).code, 1);
      });

      it('acl list keeps its shape; the human table of acl effective has a header', async (t) => {
        const { db } = await database(t, engine);
        await cli(['acl', 'add', T1, '--valid-from', '2020-01-01', '--allow-offline', ...db]);
        assert.deepEqual(await json(['acl', 'list', ...db]), [{ token: 'flee…0001', stations: [], all_stations: true, expires_at: null, blocked: false, note: null }]);
        assert.match((await cli(['acl', 'effective', ...db])).out, /^TOKEN\s+GROUP\s+STATE\s+STATIONS/);
      });
    });

    describe('acl import: full and differential updates with a list version', () => {
      it('applies the OCPP SendLocalList rule and is all-or-nothing', async (t) => {
        const dir = tempDir(t);
        const { db } = await database(t, engine);
        const file = (name: string, text: string) => {
          const p = join(dir, name);
          writeFileSync(p, text);
          return p;
        };
        await cli(['acl', 'group', 'add', 'fleet', ...db]);
        const full = file('full.csv', `token,stations,group,valid_from,allow_offline,note\n${T1},${S1},fleet,2020-01-01,true,one\n${T2},,,,,two\n`);
        assert.equal((await cli(['acl', 'import', full, '--replace', '--list-version', '5', ...db])).out, 'acl: imported 2, removed 0, list version 5\n');
        assert.deepEqual(await json(['acl', 'list-version', ...db]), { version: 5, update_type: 'full', updated_at: (await json(['acl', 'list-version', ...db])).updated_at });
        const eff = (await json(['acl', 'effective', '--full', ...db])) as Array<Record<string, unknown>>;
        assert.deepEqual([eff[0]!.group, eff[0]!.stations, eff[0]!.valid_from, eff[0]!.allow_offline], ['fleet', [S1], '2020-01-01T00:00:00.000Z', true]);

        const diff = file('diff.csv', `token,blocked,remove\n${T2},,true\n${T3},true,\n`);
        const older = await cli(['acl', 'import', diff, '--differential', '--list-version', '5', ...db]);
        assert.equal(older.code, 1, 'a differential update needs a higher version');
        assert.match(older.err, /list version 5 refused: the list is at version 5/);
        assert.equal((await cli(['acl', 'import', diff, '--list-version', '6', ...db])).out, 'acl: imported 1, removed 1, list version 6\n');
        const tokens = ((await json(['acl', 'list', '--full', ...db])) as Array<{ token: string; blocked: boolean }>).map((r) => [r.token, r.blocked]);
        assert.deepEqual(tokens, [[T1, false], [T3, true]]);

        const stale = await cli(['acl', 'import', full, '--replace', '--list-version', '4', ...db]);
        assert.equal(stale.code, 1, 'an older full list is refused');
        assert.equal((await json(['acl', 'list', ...db])).length, 2, 'nothing changed');
        assert.equal((await cli(['acl', 'import', full, '--replace', '--list-version', '6', ...db])).code, 0, 'the same version again is a harmless re-send of a full list');
        assert.equal((await json(['acl', 'list-version', ...db])).version, 6);

        // Unversioned imports and manual edits leave the version alone.
        assert.equal((await cli(['acl', 'import', diff, ...db])).out, 'acl: imported 1, removed 1\n');
        assert.equal((await json(['acl', 'list-version', ...db])).version, 6);
      });

      it('refuses bad input with the line, and keeps the list as it was', async (t) => {
        const dir = tempDir(t);
        const { db } = await database(t, engine);
        await cli(['acl', 'add', T1, ...db]);
        const cases: Array<[string, string[], RegExp, number]> = [
          [`token,group\n${T2},\n${T3},ghost\n`, [], /CSV line 3: no such group "ghost"/, 2],
          [`token,allow_offline\n${T2},perhaps\n`, [], /CSV line 2: allow_offline must be true or false/, 2],
          [`token,valid_from\n${T2},soon\n`, [], /CSV line 2: invalid valid_from/, 2],
          [`token,remove\n${T2},true\n`, ['--replace'], /remove rows belong to a differential update/, 2],
          [`token\n${T2}\n`, ['--replace', '--differential'], /not both/, 2],
          [`token\n${T2}\n`, ['--list-version', '0'], /invalid list version/, 2],
        ];
        cases.forEach(([text, flags], i) => writeFileSync(join(dir, `bad${i}.csv`), text));
        for (let i = 0; i < cases.length; i++) {
          const [, flags, message, code] = cases[i]!;
          const r = await cli(['acl', 'import', join(dir, `bad${i}.csv`), ...flags, ...db]);
          assert.equal(r.code, code, `case ${i}`);
          assert.match(r.err, message, `case ${i}`);
        }
        assert.deepEqual(((await json(['acl', 'list', '--full', ...db])) as Array<{ token: string }>).map((r) => r.token), [T1]);
        assert.equal((await json(['acl', 'list-version', ...db])).version, 0);
      });
    });

    describe('acl import of a large file (streamed, staged, applied in one transaction)', () => {
      it('imports 100,000 rows with their stations, groups and notes; a later row wins; a bad last row changes nothing', async (t) => {
        const dir = tempDir(t);
        const { db, data } = await database(t, engine);
        const N = 100_000;
        const tok = (i: number) => `bulk-card-${String(i).padStart(12, '0')}`;
        await cli(['acl', 'group', 'add', 'fleet', ...db]);
        await cli(['acl', 'add', T1, ...db]); // not in the file: kept by a differential import
        // A sighting of a card the file brings: the import takes it off the unknown list.
        await data.run(`INSERT INTO unknown_tokens (token_hash, station_id, token_mask, seen_count, first_seen_at, last_seen_at, last_status, last_reason, last_request_id)
          VALUES (?, ?, 'bulk…0042', 1, 1, 1, 'not_allowed', 'unknown_token', 'r')`, hashToken(tok(42)), S1);

        const stationsOf = (i: number) => (i % 3 === 0 ? S1 : i % 3 === 1 ? `${S1};${S2}` : '');
        const lines = ['token,stations,expires_at,blocked,note,group'];
        for (let i = 0; i < N; i++) {
          lines.push(`${tok(i)},${stationsOf(i)},${i % 5 === 0 ? '2030-01-01' : ''},${i % 7 === 0},"row ${i}, quoted",${i % 11 === 0 ? 'fleet' : ''}`);
        }
        lines.push(`${tok(5)},${S2},,true,replaced,`); // the same token again, later: this row wins
        const big = join(dir, 'big.csv');
        writeFileSync(big, lines.join('\n') + '\n');

        const r = await cli(['acl', 'import', big, ...db]);
        assert.equal(r.err, '');
        assert.equal(r.out, `acl: imported ${N + 1}, removed 0\n`);

        const count = async (sql: string, ...args: unknown[]) => Number((await data.run(sql.replace('COUNT(*)', 'COUNT(*) AS n'), ...args))[0]!.n);
        assert.equal(await count('SELECT COUNT(*) FROM acl'), N + 1);
        assert.equal(await count("SELECT COUNT(*) FROM acl WHERE token LIKE 'bulk-card-%'"), N);
        let stationRows = 0;
        for (let i = 0; i < N; i++) if (i !== 5) stationRows += stationsOf(i) === '' ? 0 : stationsOf(i).split(';').length;
        assert.equal(await count("SELECT COUNT(*) FROM acl_stations WHERE token LIKE 'bulk-card-%'"), stationRows + 1);
        assert.equal(await count('SELECT COUNT(*) FROM acl WHERE group_name = ?', 'fleet'), Math.ceil(N / 11));
        assert.equal(await count('SELECT COUNT(*) FROM acl WHERE blocked = 1'), Math.ceil(N / 7) + (5 % 7 === 0 ? 0 : 1));
        assert.equal(await count('SELECT COUNT(*) FROM acl WHERE expires_at IS NOT NULL'), Math.ceil(N / 5) - 1);
        const row = async (i: number) => ({ ...(await data.run('SELECT blocked, expires_at, note, group_name FROM acl WHERE token = ?', tok(i)))[0] });
        assert.deepEqual(await row(5), { blocked: 1, expires_at: null, note: 'replaced', group_name: null });
        assert.deepEqual((await data.run('SELECT station_id FROM acl_stations WHERE token = ?', tok(5))).map((r) => r.station_id), [S2]);
        assert.deepEqual(await row(N - 1), { blocked: (N - 1) % 7 === 0 ? 1 : 0, expires_at: null, note: `row ${N - 1}, quoted`, group_name: null });
        assert.deepEqual(await row(55), { blocked: 0, expires_at: '2030-01-01T00:00:00.000Z', note: 'row 55, quoted', group_name: 'fleet' });
        assert.equal(await count('SELECT COUNT(*) FROM unknown_tokens'), 0, 'an imported card leaves the unknown list');

        // A second large file whose last row is bad: nothing of it is applied.
        const bad = join(dir, 'bad.csv');
        writeFileSync(bad, ['token', ...Array.from({ length: N }, (_, i) => `other-card-${String(i).padStart(12, '0')}`), 'short'].join('\n') + '\n');
        const refused = await cli(['acl', 'import', bad, '--replace', ...db]);
        assert.equal(refused.code, 2);
        assert.match(refused.err, new RegExp(`CSV line ${N + 2}: invalid token`));
        assert.equal(await count('SELECT COUNT(*) FROM acl'), N + 1);

        // A full update with one row removes all the others, their stations with them.
        const one = join(dir, 'one.csv');
        writeFileSync(one, `token\n${T1}\n`);
        assert.equal((await cli(['acl', 'import', one, '--replace', ...db])).out, `acl: imported 1, removed ${N}\n`);
        assert.equal(await count('SELECT COUNT(*) FROM acl'), 1);
        assert.equal(await count('SELECT COUNT(*) FROM acl_stations'), 0);
      });
    });
  });
}
