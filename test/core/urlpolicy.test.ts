import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkAddress, checkHost, compilePolicy } from '../../src/core/urlpolicy.ts';

describe('callback URL policy', () => {
  const open = compilePolicy(null);

  it('always refuses link-local and cloud metadata targets', () => {
    for (const host of ['169.254.169.254', '169.254.0.1', '[fe80::1]', 'fe80::abcd', '::ffff:169.254.169.254', 'metadata.google.internal', 'METADATA.GOOGLE.INTERNAL.', '100.100.100.200', 'fd00:ec2::254', '0.0.0.0']) {
      assert.equal(checkHost(open, host).ok, false, host);
    }
    assert.equal(checkAddress(open, 'evil.example', '169.254.169.254').ok, false);
    assert.equal(checkAddress(open, 'evil.example', '::ffff:169.254.169.254').ok, false);
  });

  it('allows any other host without an allow-list', () => {
    for (const host of ['client.app', '127.0.0.1', '10.1.2.3', '[::1]', '192.168.1.10']) assert.equal(checkHost(open, host).ok, true, host);
    assert.equal(checkAddress(open, 'client.app', '203.0.113.7').ok, true);
  });

  it('with an allow-list: names, wildcards, IPs and CIDRs', () => {
    const p = compilePolicy(['client.app', '*.fleet.example', '10.0.0.0/8', '192.168.1.10', 'fd00::/8']);
    assert.equal(checkHost(p, 'client.app').ok, true);
    assert.equal(checkHost(p, 'api.fleet.example').ok, true);
    assert.equal(checkHost(p, 'fleet.example').ok, true, 'unlisted name may still resolve into an allowed net');
    assert.equal(checkHost(p, '10.9.9.9').ok, true);
    assert.equal(checkHost(p, '192.168.1.10').ok, true);
    assert.equal(checkHost(p, '192.168.1.11').ok, false);
    assert.equal(checkHost(p, '[fd00::1]').ok, true);
    assert.equal(checkAddress(p, 'other.example', '10.2.3.4').ok, true);
    assert.equal(checkAddress(p, 'other.example', '127.0.0.1').ok, false);
    assert.equal(checkAddress(p, 'client.app', '127.0.0.1').ok, true, 'a listed name may resolve anywhere but link-local');
    assert.equal(checkAddress(p, 'client.app', '169.254.169.254').ok, false);
  });

  it('with a names-only allow-list the text decides', () => {
    const p = compilePolicy(['client.app']);
    assert.equal(checkHost(p, 'other.app').ok, false);
    assert.equal(checkHost(p, '127.0.0.1').ok, false);
  });

  it('refuses malformed entries', () => {
    for (const bad of ['10.0.0.0/33', 'exa mple.com', '*.', 'http://x']) assert.throws(() => compilePolicy([bad]), new RegExp(bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
  });
});
