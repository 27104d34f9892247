import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import pino from 'pino';
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { raw, rawPost } from './support/raw.ts';

const dir = mkdtempSync(join(tmpdir(), 'cgx-'));
const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', DB_PATH: join(dir, 'cg.db'), WORKERS: '1' });
const app = await createApp({ config, log: pino({ level: 'silent' }) });
await app.dispatcher.stop(0);
await app.server.start();
const port = app.server.info.port as number;
const rows = () => app.db.prepare('SELECT COUNT(*) FROM charging_requests').pluck().get();
const P = '/api/v1/charging-session';
const good = { station_id: '123e4567-e89b-12d3-a456-426614174000', driver_token: 'ABCD-efgh1234567890_~valid.token', callback_url: 'http://127.0.0.1:9/cb' };
const J = (s: string) => rawPost(P, ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(s)}`, 'Connection: close'], s);
const cases: Array<[string, Buffer, object?]> = [
  ['good', J(JSON.stringify(good))],
  ['dup keys', J(`{"station_id":"bad","station_id":"${good.station_id}","driver_token":"${good.driver_token}","callback_url":"${good.callback_url}"}`)],
  ['invalid utf8 in url', Buffer.concat([Buffer.from(J(JSON.stringify({ ...good, callback_url: 'http://127.0.0.1:9/cbXX' })).toString('latin1').replace('XX', '\xff\xfe'), 'latin1')])],
  ['lone surrogate', J(JSON.stringify(good).replace('/cb', '/cb\\ud800'))],
  ['proto', J(`{"__proto__":{"x":1},"station_id":"${good.station_id}","driver_token":"${good.driver_token}","callback_url":"${good.callback_url}"}`)],
  ['constructor', J(`{"constructor":{"prototype":{"x":1}},"station_id":"${good.station_id}","driver_token":"${good.driver_token}","callback_url":"${good.callback_url}"}`)],
  ['CL+TE', rawPost(P, ['Content-Type: application/json', 'Content-Length: 4', 'Transfer-Encoding: chunked'], '0\r\n\r\n')],
  ['dup CL', rawPost(P, ['Content-Type: application/json', 'Content-Length: 4', 'Content-Length: 5'], '{}{}')],
  ['TE obfuscated', rawPost(P, ['Content-Type: application/json', 'Transfer-Encoding: xchunked', 'Content-Length: 2'], '{}')],
  ['header flood', rawPost(P, [...Array.from({ length: 3000 }, (_, i) => `X-H${i}: ${'a'.repeat(20)}`), 'Content-Type: application/json', 'Content-Length: 2'], '{}')],
  ['bad percent', Buffer.from(`GET ${P}/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
  ['deep', J('['.repeat(8000) + ']'.repeat(8000))],
  ['deep obj', J('{"a":'.repeat(3000) + '1' + '}'.repeat(3000))],
];
for (const [name, bytes] of cases) {
  const before = rows();
  const r = await raw(port, bytes, { timeoutMs: 3000 });
  console.log(name, r.statuses, JSON.stringify(r.bodies).slice(0, 300), 'closed', r.closedByServer, r.ms, 'rows+', Number(rows()) - Number(before));
}
const s = app.db.prepare('SELECT callback_url FROM charging_requests').pluck().all();
console.log(s.map((x) => JSON.stringify(x)));
await app.stop();
