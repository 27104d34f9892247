import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import postgres from 'postgres';
import { connectPg } from '../../src/queue/pg/connect.ts';
import { decideFacts } from '../../src/queue/pg/facts.ts';
import { decide } from '../../workers/decide.ts';
import { startApp } from '../support/app.ts';
import { cli } from '../support/cli.ts';
import { ENGINES } from '../support/engines.ts';
import { processDir, runCli } from '../support/process.ts';
import { startReceiver } from '../support/receiver.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

// The `acl` and `stations` commands on PostgreSQL (issue 12): the same output as on SQLite
// for the same commands, a running PostgreSQL service deciding by what they write, and
// `acl import --replace` atomic for its decisions. test/dispatch/aclcli.test.ts runs the
// ACL cases themselves on both engines.

const pg = ENGINES.find((e) => e.name === 'postgres')!;
const sqlite = ENGINES.find((e) => e.name === 'sqlite')!;
const S1 = '123e4567-e89b-12d3-a456-426614174000';
const S2 = '9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab';
const T1 = 'fleet-card-0000000000000001';
const T2 = 'Fleet-card-0000000000000002';
const T3 = 'other_card-0000000000000003';
const PASSWORD = 'pw-s3cret-aclcli';

/** A fresh database on an engine (dropped after the test) and the flag naming it to the CLI. */
async function database(t: TestContext, engine: typeof pg) {
  const data = await engine.appDatabase();
  t.after(data.drop);
  const url = data.env.DATABASE_URL;
  return { data, url, db: url ? ['--database-url', url] : ['--db', data.env.DB_PATH!] };
}

/** The URL with a password in it (the test server trusts local connections and ignores it). */
const withPassword = (url: string) => {
  const u = new URL(url);
  u.password = PASSWORD;
  return u.toString();
};

describe('acl and stations commands: the same output on both engines', { skip: pg.skip }, () => {
  it('a session of admin commands prints the same on SQLite and on PostgreSQL', async (t) => {
    const dir = tempDir(t);
    const csv = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    // A note with what COPY's text format escapes (tab, backslash, line break) and more.
    const full = csv('full.csv', `token,stations,group,note,token_type\n${T1},${S1};${S2},fleet,"one, two\t\\N \\ ü\r\nnext",rfid\n${T2},,,,\n`);
    // T2 removed and listed again: present, as on SQLite (removals go first); T2 sorts before T1 in byte order.
    const diff = csv('diff.csv', `token,blocked,remove,expires_at\n${T2},,true,\n${T3},true,,2021-01-01\n${T2},true,,\n`);
    const bad = csv('bad.csv', `token,stations\n${T3},${S1}\nshort,\n`);
    const session = (db: string[]): string[][] => [
      ['stations', 'add', S2, '--name', 'bay 2', ...db], ['stations', 'add', S1.toUpperCase(), ...db],
      ['stations', 'list', ...db], ['stations', 'list', '--json', ...db],
      ['stations', 'remove', S2, ...db], ['stations', 'remove', S2, ...db], ['stations', 'list', ...db],
      ['acl', 'group', 'add', 'fleet', '--station', S2, '--station', S1, '--allow-offline', ...db],
      ['acl', 'group', 'add', 'Depot', '--blocked', '--valid-from', '2020-01-01', ...db],
      ['acl', 'add', T3, '--group', 'Depot', '--note', 'night', '--token-type', 'app_user', ...db],
      ['acl', 'add', T2, '--group', 'ghost', ...db],
      ['acl', 'import', full, '--replace', '--list-version', '2', ...db],
      ['acl', 'import', diff, '--list-version', '2', ...db], ['acl', 'import', diff, '--list-version', '3', ...db],
      ['acl', 'import', bad, ...db],
      ['acl', 'list', ...db], ['acl', 'list', '--json', '--full', ...db],
      ['acl', 'effective', ...db], ['acl', 'effective', '--json', ...db],
      ['acl', 'group', 'list', ...db], ['acl', 'group', 'list', '--json', ...db],
      ['acl', 'list-version', '--json', ...db], ['acl', 'list-version', ...db],
      ['acl', 'group', 'remove', 'fleet', ...db], ['acl', 'remove', T1, ...db], ['acl', 'remove', T1, ...db],
      ['acl', 'group', 'remove', 'fleet', ...db], ['acl', 'group', 'remove', 'fleet', ...db], ['acl', 'group', 'list', ...db],
    ];
    // Times of "now" (created_at, updated_at) differ between the runs; the rest must not.
    const today = new Date().toISOString().slice(0, 10);
    const nowTimes = new RegExp(`${today}T\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z`, 'g');
    const run = async (db: string[]) => {
      const out: string[] = [];
      for (const args of session(db)) {
        const r = await cli(args);
        out.push(`$ ${args.slice(0, -2).join(' ')}\n[${r.code}] ${r.out}${r.err}`.replace(nowTimes, '<now>'));
      }
      return out;
    };
    const onSqlite = await run((await database(t, sqlite)).db);
    const onPg = await run((await database(t, pg)).db);
    assert.deepEqual(onPg, onSqlite);
    // The session did what it says (not two engines failing alike).
    const text = onSqlite.join('\n');
    assert.match(text, /acl: imported 2, removed 1, list version 2/);
    assert.match(text, /list version 2 refused/);
    assert.match(text, /acl: imported 2, removed 1, list version 3/);
    assert.match(text, /\[2\] chargegate: CSV line 3: invalid token/);
    assert.match(text, /\[1\] acl: group fleet still has 1 token/);
    assert.match(text, /"token":"Fleet-card-0000000000000002","stations":\[\],"all_stations":true,"expires_at":null,"blocked":true/);
    assert.match(text, /"token":"othe…0003","group":null,"state":"blocked"/);
    assert.match(text, /acl: group removed/);
    assert.match(onSqlite[3]!, /"station_id":"123e4567-e89b-12d3-a456-426614174000","name":null/);
  });
});

describe('acl commands on PostgreSQL', { skip: pg.skip }, () => {
  it('a PostgreSQL service decides by entries added, blocked and removed with --database-url', async (t) => {
    const rx = await startReceiver();
    t.after(rx.close);
    const data = await pg.appDatabase();
    const { app, base } = await startApp(t, data.env);
    t.after(data.drop);
    const url = withPassword(data.env.DATABASE_URL!);
    const decision = async (token: string) => {
      const before = rx.calls.length;
      const res = await fetch(`${base}/api/v1/charging-session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ station_id: S1, driver_token: token, callback_url: rx.url() }),
      });
      assert.equal(res.status, 202);
      const { request_id: id } = (await res.json()) as { request_id: string };
      await waitFor(() => rx.calls.length > before, { what: 'the callback' });
      const [row] = await data.run('SELECT decision_status, decision_reason FROM charging_requests WHERE id = ?', id);
      assert.equal(rx.calls[rx.calls.length - 1]!.json!.status, row!.decision_status, 'the callback tells the decision');
      return `${String(row!.decision_status)}/${String(row!.decision_reason)}`;
    };
    const outputs: string[] = [];
    const run = async (args: string[], env: Record<string, string> = {}) => {
      const r = await cli(args, env);
      outputs.push(r.out, r.err);
      assert.equal(r.code, 0, r.err);
    };
    assert.match(await decision(T1), /^not_allowed\//, 'not listed yet');
    await run(['acl', 'add', T1, '--station', S1, '--database-url', url]);
    assert.equal(await decision(T1), 'allowed/acl_match');
    await run(['acl', 'add', T1, '--blocked', '--database-url', url]);
    assert.equal(await decision(T1), 'not_allowed/blocked');
    // DATABASE_URL from the environment names the database as it does for `serve`.
    await run(['acl', 'add', T1], { DATABASE_URL: url });
    assert.equal(await decision(T1), 'allowed/acl_match');
    await run(['acl', 'remove', T1, '--database-url', url]);
    assert.match(await decision(T1), /^not_allowed\//);
    await run(['stations', 'add', S2, '--database-url', url]);
    assert.equal(await decision(T1), 'invalid/station_not_registered', 'once stations are registered, others are refused');
    await run(['stations', 'list', '--json'], { DATABASE_URL: url });
    assert.deepEqual(JSON.parse(outputs.at(-2)!).map((r: { station_id: string }) => r.station_id), [S2]);
    assert.ok(!outputs.join('').includes(PASSWORD), 'the password is never printed');
    await app.stop();
  });

  it('import --replace while the service decides: every decision batch sees the old list or the new one', { timeout: 180_000 }, async (t) => {
    const OLD = 20_000;
    const NEW = 60_000;
    const dir = processDir(t);
    const rx = await startReceiver();
    t.after(rx.close);
    const data = await pg.appDatabase();
    const { app, base } = await startApp(t, data.env);
    t.after(data.drop);
    const url = data.env.DATABASE_URL!;
    const oldTok = (i: number) => `old-card-${String(i).padStart(12, '0')}`;
    const newTok = (i: number) => `new-card-${String(i).padStart(12, '0')}`;
    const listFile = (name: string, n: number, tok: (i: number) => string) => {
      const lines = ['token,stations,note'];
      for (let i = 0; i < n; i++) lines.push(`${tok(i)},${i % 3 === 0 ? S1 : ''},row ${i}`);
      writeFileSync(join(dir, name), lines.join('\n') + '\n');
      return join(dir, name);
    };
    const first = await runCli(t, ['acl', 'import', listFile('old.csv', OLD, oldTok), '--replace', '--database-url', url], { timeoutMs: 60_000 });
    assert.equal(first.stdout, `acl: imported ${OLD}, removed 0\n`, first.stderr);

    // What the service does per decide batch: the facts read on the main thread, the decision in workers/decide.ts.
    const sql = connectPg(url, { max: 2 });
    t.after(() => sql.end({ timeout: 1 }));
    const sample = [0, 1, OLD / 2, OLD - 1].map(oldTok).concat([0, 1, NEW / 2, NEW - 1].map(newTok));
    const items = sample.map((token, i) => ({ id: `d${i}`, station_id: S1, driver_token: token, token_type: 'RFID' as const }));
    const verdicts = async () => decide({ dbPath: '', now: Date.now(), items, facts: await decideFacts(sql, items, false) })!
      .map((d) => d.status).join(',');
    const OLD_VERDICTS = [...Array(4).fill('allowed'), ...Array(4).fill('not_allowed')].join(',');
    const NEW_VERDICTS = [...Array(4).fill('not_allowed'), ...Array(4).fill('allowed')].join(',');
    const counts = async () => {
      const [r] = await sql<Array<{ old: number; new: number; stations: number }>>`SELECT
        (SELECT COUNT(*) FROM acl WHERE token LIKE 'old-card-%') AS old, (SELECT COUNT(*) FROM acl WHERE token LIKE 'new-card-%') AS new,
        (SELECT COUNT(*) FROM acl_stations) AS stations`;
      return JSON.stringify(r);
    };
    const OLD_STATE = JSON.stringify({ old: OLD, new: 0, stations: Math.ceil(OLD / 3) });
    const NEW_STATE = JSON.stringify({ old: 0, new: NEW, stations: Math.ceil(NEW / 3) });
    assert.equal(await verdicts(), OLD_VERDICTS);

    const importing = runCli(t, ['acl', 'import', listFile('new.csv', NEW, newTok), '--replace', '--database-url', url], { timeoutMs: 150_000 });
    let done = false;
    void importing.finally(() => (done = true));
    const seen = { old: 0, new: 0 };
    const readLoop = (async () => {
      while (!done) {
        const v = await verdicts();
        assert.ok(v === OLD_VERDICTS || v === NEW_VERDICTS, `one decision batch saw a mix: ${v}`);
        seen[v === OLD_VERDICTS ? 'old' : 'new']++;
        const c = await counts();
        assert.ok(c === OLD_STATE || c === NEW_STATE, `a reader saw a mix: ${c}`);
      }
    })();
    const statuses = new Map<number, number>();
    const ids: string[] = [];
    const postLoop = (async () => {
      for (let i = 0; !done; i++) {
        const res = await fetch(`${base}/api/v1/charging-session`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ station_id: S1, driver_token: i % 2 ? oldTok(3 * i) : newTok(3 * i), callback_url: rx.url() }),
        });
        const body = (await res.json()) as { request_id: string };
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 202) ids.push(body.request_id);
      }
    })();
    const r = await importing;
    await Promise.all([readLoop, postLoop]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `acl: imported ${NEW}, removed ${OLD}\n`);
    assert.ok(seen.old > 0, `the reads overlapped the import (${JSON.stringify(seen)})`);
    assert.deepEqual([...statuses.keys()], [202], `every POST during the import got 202: ${JSON.stringify([...statuses])}`);
    assert.ok(ids.length > 0);
    assert.equal(await counts(), NEW_STATE);
    assert.equal(await verdicts(), NEW_VERDICTS);
    // Every accepted request is decided by the service (by one list or the other) and delivered.
    const open = async () => Number((await data.run("SELECT COUNT(*) AS n FROM charging_requests WHERE state <> 'delivered'"))[0]!.n);
    await waitFor(async () => (await open()) === 0, { what: 'every request delivered', timeoutMs: 60_000 });
    const decided = await data.run('SELECT decision_status AS s, COUNT(*) AS n FROM charging_requests GROUP BY 1 ORDER BY 1');
    assert.equal(decided.reduce((sum, r) => sum + Number(r.n), 0), ids.length);
    assert.ok(decided.every((r) => r.s === 'allowed' || r.s === 'not_allowed'), JSON.stringify(decided));
    await app.stop();
  });

  it('one import at a time; a refused import changes nothing', async (t) => {
    const dir = tempDir(t);
    const { db, url } = await database(t, pg);
    writeFileSync(join(dir, 'one.csv'), `token\n${T1}\n`);
    assert.equal((await cli(['acl', 'import', join(dir, 'one.csv'), '--replace', '--list-version', '4', ...db])).code, 0);
    const before = (await cli(['acl', 'list', '--json', '--full', ...db])).out;
    writeFileSync(join(dir, 'two.csv'), `token\n${T2}\n`);
    // Another import holds the import lock (src/cli/pg/aclimport.ts) on its session.
    const other = postgres(url!, { max: 1, onnotice: () => undefined });
    t.after(() => other.end({ timeout: 1 }));
    await other`SELECT pg_advisory_lock(${0x63670002})`;
    const busy = await cli(['acl', 'import', join(dir, 'two.csv'), '--replace', ...db]);
    assert.equal(busy.code, 2);
    assert.equal(busy.err, 'chargegate: another acl import is running on this database; run this one when it has finished\n');
    await other`SELECT pg_advisory_unlock(${0x63670002})`;
    assert.equal((await cli(['acl', 'import', join(dir, 'two.csv'), '--replace', '--list-version', '3', ...db])).code, 1);
    assert.equal((await cli(['acl', 'list', '--json', '--full', ...db])).out, before);
    assert.equal((await cli(['acl', 'import', join(dir, 'two.csv'), '--replace', ...db])).out, 'acl: imported 1, removed 1\n');
    assert.equal(JSON.parse((await cli(['acl', 'list-version', '--json', ...db])).out).version, 4);
    // Nothing of the staging is left in the database.
    const [left] = await other<Array<{ n: number }>>`SELECT COUNT(*)::int AS n FROM pg_class WHERE relname LIKE 'acl\\_%' AND relpersistence = 't'`;
    assert.equal(left!.n, 0);
  });
});

describe('--database-url on the acl and stations commands: bad usage and the password', () => {
  it('a bad URL or two databases is exit 2; an unreachable server exit 1 without the password', async (t) => {
    const db = join(tempDir(t), 'cg.db');
    const commands = [['acl', 'list'], ['acl', 'add', T1], ['stations', 'list'], ['acl', 'group', 'list'], ['acl', 'effective']];
    for (const args of commands) {
      const bad = await cli([...args, '--database-url', 'mysql://u:pw@host/db']);
      assert.equal(bad.code, 2, args.join(' '));
      assert.match(bad.err, /^chargegate: invalid --database-url: /);
      const both = await cli([...args, '--db', db, '--database-url', 'postgres://127.0.0.1/x']);
      assert.equal(both.code, 2);
      assert.equal(both.err, 'chargegate: --db and --database-url name two databases: give one\n');
      const env = await cli(args, { DATABASE_URL: 'not a url' });
      assert.equal(env.code, 2);
      assert.match(env.err, /^chargegate: invalid DATABASE_URL: /);
    }
    const down = await cli(['acl', 'list', '--database-url', `postgres://admin:${PASSWORD}@127.0.0.1:1/cg`]);
    assert.equal(down.code, 1);
    assert.match(down.err, /cannot use PostgreSQL at postgres:\/\/admin:\*\*\*@127\.0\.0\.1:1\/cg/);
    assert.ok(!down.err.includes(PASSWORD) && !down.out.includes(PASSWORD));

    // --db wins over DATABASE_URL from the environment: the file is used, PostgreSQL is not asked.
    const local = await cli(['stations', 'add', S1, '--db', db], { DATABASE_URL: `postgres://admin:${PASSWORD}@127.0.0.1:1/cg` });
    assert.equal(local.code, 0, local.err);
    assert.deepEqual(JSON.parse((await cli(['stations', 'list', '--json', '--db', db])).out).length, 1);
  });
});
