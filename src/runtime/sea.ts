import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, openSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as sea from 'node:sea';
import pkg from '../../package.json' with { type: 'json' };
import { runCli } from '../cli/main.ts';
import { unpackSettings, type UnpackSettings } from '../config.ts';
import { fsReason, makeDirs } from '../core/fsutil.ts';
import { setRuntimePaths, type RuntimePaths } from './paths.ts';
import { MANIFEST_ASSET, openPayload, type PayloadEntry } from './payload.ts';
import { processIo } from './stdio.ts';

// The single executable's program (bundled by build.mjs, loaded by src/runtime/boot.ts). The
// binary carries the better-sqlite3 addon and the worker bundles after its end
// (src/runtime/payload.ts); a thread or dlopen needs a real file, so they are unpacked once
// into a cache folder, under names that carry their content hash, and reused by every later
// start of the same build.

/** One unpacked file, as build.mjs describes it in the `manifest.json` asset. */
export interface ManifestEntry extends PayloadEntry {
  /** File name in the cache folder; carries the content hash, so a new build never reuses an old file. */
  file: string;
}

/** The SEA asset `manifest.json`: where each appended file is (src/runtime/payload.ts). */
export interface Manifest {
  /** Ties the appended files to this index (the trailer repeats it). */
  payload: string;
  /** The CLI bundle and its V8 code cache (src/runtime/boot.ts). */
  app: PayloadEntry;
  cache: PayloadEntry;
  addon: ManifestEntry;
  task: ManifestEntry;
  piscinaWorker: ManifestEntry;
}


interface Candidate {
  dir: string;
  /** Where the choice came from, for error messages. */
  from: string;
  /** A shared folder (the temp dir): must be ours and closed to others before we load code from it. */
  shared: boolean;
}

/**
 * Where to unpack, in order of preference: `--cache-dir` / `CHARGEGATE_CACHE_DIR` alone
 * when given; else `.chargegate-cache` in the database's folder, then a per-user folder in
 * the temp dir (which gateways often mount noexec, hence not the first choice).
 */
export function cacheCandidates(
  settings: UnpackSettings,
  deps: { tmpdir: () => string; uid: number | undefined } = { tmpdir, uid: process.getuid?.() },
): Candidate[] {
  if (settings.cacheDir) {
    return [{ dir: resolve(settings.cacheDir), from: settings.cacheDirFrom ?? 'CHARGEGATE_CACHE_DIR', shared: false }];
  }
  return [
    { dir: join(dirname(resolve(settings.dbPath)), '.chargegate-cache'), from: 'the database folder', shared: false },
    { dir: join(deps.tmpdir(), `chargegate-${deps.uid ?? 'user'}`), from: 'the temp dir', shared: true },
  ];
}

function ensureDir(c: Candidate): void {
  // Only the cache itself is private: the database folder it may create on the way gets
  // the usual mode, as when the service creates it (npm start), so other users' read-only
  // commands (and admins' sqlite3) reach the database as they would otherwise.
  makeDirs(dirname(c.dir));
  makeDirs(c.dir, 0o700);
  if (!c.shared) return;
  // Anyone can create folders in /tmp: only load code from one that is ours alone.
  const st = lstatSync(c.dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    throw new Error(`${c.dir} is not a private folder of this user`);
  }
}

/** Writes one embedded file unless an earlier start did; temp file + rename, so concurrent starts don't race. */
function unpack(dir: string, e: ManifestEntry, copy: (e: ManifestEntry, fd: number) => void): string {
  const target = join(dir, e.file);
  try {
    if (statSync(target).size === e.size) return target;
  } catch {}
  const tmp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    copy(e, fd);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, target);
  return target;
}

export interface UnpackDeps {
  manifest: Manifest;
  /** Writes the embedded file to an open descriptor (Payload.copyTo). */
  copy: (e: ManifestEntry, fd: number) => void;
  /** Loads the addon once to prove the folder allows it (noexec mounts do not). */
  load: (file: string) => unknown;
}

/** Unpacks into the first candidate folder that works and returns the runtime paths. */
export function unpackAll(candidates: readonly Candidate[], deps: UnpackDeps): Required<RuntimePaths> {
  const failures: string[] = [];
  for (const c of candidates) {
    try {
      ensureDir(c);
      const paths = {
        nativeBinding: unpack(c.dir, deps.manifest.addon, deps.copy),
        workerFile: unpack(c.dir, deps.manifest.task, deps.copy),
        piscinaWorker: unpack(c.dir, deps.manifest.piscinaWorker, deps.copy),
      };
      deps.load(paths.nativeBinding);
      return paths;
    } catch (err) {
      failures.push(`${c.dir} (${c.from}): ${(err as NodeJS.ErrnoException).code ? fsReason(err) : (err as Error).message}`);
    }
  }
  throw new Error(
    `cannot unpack the embedded files: ${failures.join('; ')}. CHARGEGATE_CACHE_DIR chooses the folder: it must be writable and allow executables (not mounted noexec).`,
  );
}

/** The executable's start, called by src/runtime/boot.ts once the bundle is loaded. */
export function main(): void {
  const argv = process.argv.slice(2);
  const manifest = JSON.parse(sea.getAsset(MANIFEST_ASSET, 'utf8')) as Manifest;
  // The injected script's own require reaches built-in modules only.
  const fsRequire = createRequire(process.execPath);
  const payload = openPayload(manifest.payload);
  setRuntimePaths(() => unpackAll(cacheCandidates(unpackSettings(process.env, argv)), { manifest, copy: payload.copyTo, load: fsRequire }));

  // From here on the same as bin/chargegate.ts.
  const io = processIo(process.env);
  runCli(argv, io, pkg.version).then((code) => {
    process.exitCode = code;
  });
}

/**
 * Build time only (src/runtime/warm.ts): the same start with the files given, not unpacked,
 * so V8 compiles what a real start compiles before build.mjs takes the code cache.
 */
export function warm(paths: Required<RuntimePaths>, argv: string[], env: Record<string, string>): Promise<number> {
  setRuntimePaths(paths);
  return runCli(argv, { env, out: () => undefined, err: (s) => void process.stderr.write(s) }, pkg.version);
}
