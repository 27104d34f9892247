import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

// The executable's bulky files (the CLI bundle, its code cache, the better-sqlite3 addon and
// the worker bundles) are appended after the Node binary by build.mjs, not held as SEA
// assets. A SEA asset is read through the executable's own memory mapping, and every page
// read that way stays in the process's resident set as long as it runs: the whole 6 MiB of
// them after a first start, which unpacks the addon and worker files (docs/performance.md).
// Read with read(2) they pass through the page cache only, and the copies are freed once
// used. The index (the SEA asset `manifest.json`) gives each file's place counted back from
// the end of the executable, and a trailer ties the appended bytes to that index.

/** The one SEA asset: the index of the appended files (src/runtime/sea.ts Manifest). */
export const MANIFEST_ASSET = 'manifest.json';

/** One appended file: `size` bytes starting `fromEnd` bytes before the end of the executable. */
export interface PayloadEntry {
  size: number;
  fromEnd: number;
}

/** The last bytes of the executable: this text followed by the payload id, padded to TRAILER_BYTES. */
export const TRAILER_MAGIC = 'chargegate-payload-1 ';
export const TRAILER_BYTES = 64;

export function trailerFor(id: string): Buffer {
  const text = `${TRAILER_MAGIC}${id}`;
  if (text.length > TRAILER_BYTES || !/^[0-9a-f]+$/.test(id)) throw new Error(`bad payload id ${JSON.stringify(id)}`);
  return Buffer.from(text.padEnd(TRAILER_BYTES, ' '), 'latin1');
}

export interface Payload {
  /** The whole file, read into memory (the bundle and its cache: used at once, then garbage). */
  read(e: PayloadEntry): Buffer;
  /** Copies the file to an open descriptor in small pieces (the unpacked files: nothing large held). */
  copyTo(e: PayloadEntry, fd: number): void;
}

/** The running executable on Linux even if its path was replaced since it started (an upgrade). */
const SELF = process.platform === 'linux' ? '/proc/self/exe' : process.execPath;
const CHUNK = 64 * 1024;

/**
 * The payload of `file` (the running executable by default), checked against `id` first:
 * an executable stripped or rewritten after the build has lost it, and says so.
 */
export function openPayload(id: string, file = SELF, name = process.execPath): Payload {
  const withFile = <T>(fn: (fd: number, size: number) => T): T => {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const want = trailerFor(id);
      const got = Buffer.alloc(TRAILER_BYTES);
      if (size < TRAILER_BYTES || readSync(fd, got, 0, TRAILER_BYTES, size - TRAILER_BYTES) !== TRAILER_BYTES || !got.equals(want)) {
        throw new Error(`${name}: the files built into the executable are missing or from another build (was it stripped or modified after the build?)`);
      }
      return fn(fd, size);
    } finally {
      closeSync(fd);
    }
  };
  const readAt = (fd: number, buf: Buffer, len: number, pos: number) => {
    for (let off = 0; off < len; ) {
      const n = readSync(fd, buf, off, len - off, pos + off);
      if (n === 0) throw new Error(`${name}: unexpected end of file`);
      off += n;
    }
  };
  return {
    read: (e) =>
      withFile((fd, size) => {
        const buf = Buffer.allocUnsafe(e.size);
        readAt(fd, buf, e.size, size - e.fromEnd);
        return buf;
      }),
    copyTo: (e, out) =>
      withFile((fd, size) => {
        const buf = Buffer.allocUnsafe(Math.min(CHUNK, e.size));
        for (let done = 0; done < e.size; ) {
          const len = Math.min(buf.length, e.size - done);
          readAt(fd, buf, len, size - e.fromEnd + done);
          for (let off = 0; off < len; ) off += writeSync(out, buf, off, len - off);
          done += len;
        }
      }),
  };
}
