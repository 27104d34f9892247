import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { aclAdd } from '../../src/cli/acl.ts';
import { stationAdd } from '../../src/cli/stations.ts';
import { openDb } from '../../src/queue/db.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { decide } from '../../workers/decide.ts';
import { tempDir } from '../support/tmp.ts';

const S1 = '123e4567-e89b-12d3-a456-426614174000';
const S2 = '9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab';
const tok = (name: string) => `${name}-token-0123456789abcdef`;

describe('ACL decision (worker side, real SQLite file)', () => {
  it('decides every ACL case with reason and source', (t) => {
    const path = join(tempDir(t), 'acl.db');
    const db = openDb(path, { busyTimeoutMs: 1000 });
    migrate(db);
    const base = { stations: [] as string[], expires_at: null, blocked: false, note: null };
    aclAdd(db, { ...base, token: tok('allowed') });
    aclAdd(db, { ...base, token: tok('blocked'), blocked: true });
    aclAdd(db, { ...base, token: tok('expired'), expires_at: '2020-01-01T00:00:00.000Z' });
    aclAdd(db, { ...base, token: tok('future'), expires_at: '2999-01-01T00:00:00.000Z' });
    aclAdd(db, { ...base, token: tok('scoped'), stations: [S2] });
    db.close();

    const run = (token: string, station = S1) => {
      const [d] = decide({ dbPath: path, now: Date.now(), items: [{ id: 'x', station_id: station, driver_token: token, token_type: 'RFID' as const }] })!;
      return `${d!.status}/${d!.reason}/${d!.source}`;
    };
    assert.equal(run(tok('allowed')), 'allowed/acl_match/local_list');
    assert.equal(run(tok('allowed'), S1.toUpperCase()), 'allowed/acl_match/local_list');
    assert.equal(run(tok('nobody')), 'not_allowed/unknown_token/local_list');
    assert.equal(run(tok('blocked')), 'not_allowed/blocked/local_list');
    assert.equal(run(tok('expired')), 'not_allowed/expired/local_list');
    assert.equal(run(tok('future')), 'allowed/acl_match/local_list');
    assert.equal(run(tok('scoped')), 'not_allowed/station_not_permitted/local_list');
    assert.equal(run(tok('scoped'), S2.toUpperCase()), 'allowed/acl_match/local_list');
  });

  it('decides invalid for unregistered stations once stations are registered', (t) => {
    const path = join(tempDir(t), 'st.db');
    const db = openDb(path, { busyTimeoutMs: 1000 });
    migrate(db);
    aclAdd(db, { token: tok('allowed'), stations: [], expires_at: null, blocked: false, note: null });
    const task = (station: string) => ({ dbPath: path, now: Date.now(), items: [{ id: 'x', station_id: station, driver_token: tok('allowed'), token_type: 'RFID' as const }] });
    assert.equal(decide(task(S1))![0]!.status, 'allowed', 'no stations registered: any station');
    stationAdd(db, S2, 'bay 2');
    db.close();
    assert.deepEqual({ ...decide(task(S1))![0]!, latency_ms: 0 }, { id: 'x', status: 'invalid', reason: 'station_not_registered', source: 'local_list', latency_ms: 0 });
    assert.equal(decide(task(S2))![0]!.status, 'allowed');
  });
});
