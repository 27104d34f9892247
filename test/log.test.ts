import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../src/observe/log.ts';

// SPEC §1 "driver tokens are masked in every log line": the logger masks a token a call
// site forgot to mask, wherever it sits in the logged object.

const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const OTHER = 'WXYZ-0123456789abcdefghij_other.tk';

function capture() {
  const lines: string[] = [];
  const log = createLogger('info', { write: (s: string) => void lines.push(s) });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, any>) };
}

describe('log redaction', () => {
  it('masks a full driver token at the top level and nested, keeping the mask', () => {
    const { log, lines, parsed } = capture();
    log.info({ request_id: 'r1', driver_token: TOKEN }, 'top');
    log.info({ item: { driver_token: TOKEN } }, 'one level');
    log.info({ task: { items: [{ driver_token: TOKEN }] } }, 'in an array');
    log.info({ err: { cause: { driver_token: TOKEN } } }, 'three levels');
    log.info({ token: OTHER, row: { token: OTHER } }, 'acl token');
    log.child({ driver_token: TOKEN }).info('bound to a child');
    const out = lines.join('');
    assert.doesNotMatch(out, new RegExp(TOKEN.replace(/[.~]/g, '\\$&')));
    assert.ok(!out.includes(OTHER));
    assert.ok(!out.includes('efgh1234567890'), 'no part of the middle of the token');
    const [top, one, arr, deep, acl, child] = parsed();
    assert.equal(top!.driver_token, 'ABCD…oken');
    assert.equal(top!.request_id, 'r1', 'other fields are untouched');
    assert.equal(one!.item.driver_token, 'ABCD…oken');
    assert.equal(arr!.task.items[0].driver_token, 'ABCD…oken');
    assert.equal(deep!.err.cause.driver_token, 'ABCD…oken');
    assert.equal(acl!.token, 'WXYZ…r.tk');
    assert.equal(acl!.row.token, acl!.token);
    assert.equal(child!.driver_token, 'ABCD…oken');
  });

  it('leaves a token the call site masked already as it is', () => {
    const { log, parsed } = capture();
    log.info({ driver_token: 'ABCD…oken', item: { driver_token: '…' } }, 'masked');
    const [line] = parsed();
    assert.equal(line!.driver_token, 'ABCD…oken');
    assert.equal(line!.item.driver_token, '…');
  });

  it('prints a non-string under a token name as [masked]', () => {
    const { log, lines } = capture();
    log.info({ driver_token: { value: TOKEN } }, 'object');
    assert.ok(!lines.join('').includes(TOKEN));
    assert.match(lines[0]!, /"driver_token":"\[masked\]"/);
  });
});
