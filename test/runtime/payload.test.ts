import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openPayload, TRAILER_BYTES, trailerFor } from '../../src/runtime/payload.ts';

// The files build.mjs appends after the executable, read back as the binary does, from a
// real file laid out the same way (the whole binary: test/e2e/binary.test.ts).

describe('the files appended after the executable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cg-payload-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const id = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  const head = Buffer.alloc(5000, 7); // stands for the executable itself
  const one = Buffer.from('first file');
  // Larger than one copy piece (64 KiB), and not a multiple of it.
  const two = Buffer.from(Array.from({ length: 200_003 }, (_, i) => i % 251));
  const trailer = trailerFor(id);
  const file = join(dir, 'exe');
  writeFileSync(file, Buffer.concat([head, one, two, trailer]));
  const entries = {
    one: { size: one.length, fromEnd: one.length + two.length + TRAILER_BYTES },
    two: { size: two.length, fromEnd: two.length + TRAILER_BYTES },
  };

  it('reads each file whole, and copies one to a descriptor in pieces', () => {
    const p = openPayload(id, file, 'chargegate');
    assert.ok(p.read(entries.one).equals(one));
    assert.ok(p.read(entries.two).equals(two));
    const out = join(dir, 'two.out');
    const fd = openSync(out, 'w');
    p.copyTo(entries.two, fd);
    closeSync(fd);
    assert.ok(readFileSync(out).equals(two));
  });

  it('refuses a file whose trailer is missing or names another build, naming the executable', () => {
    const cut = join(dir, 'cut');
    writeFileSync(cut, Buffer.concat([head, one, two]));
    const other = join(dir, 'other');
    writeFileSync(other, Buffer.concat([head, one, two, trailerFor('ff'.repeat(16))]));
    const tiny = join(dir, 'tiny');
    writeFileSync(tiny, 'x');
    for (const f of [cut, other, tiny]) {
      assert.throws(() => openPayload(id, f, '/usr/bin/chargegate').read(entries.one), {
        message: '/usr/bin/chargegate: the files built into the executable are missing or from another build (was it stripped or modified after the build?)',
      });
    }
  });

  it('the trailer is a fixed 64 bytes that a bad id cannot overflow', () => {
    assert.equal(trailer.length, TRAILER_BYTES);
    assert.throws(() => trailerFor('not hex'), /bad payload id/);
    assert.throws(() => trailerFor('0'.repeat(60)), /bad payload id/);
  });
});
