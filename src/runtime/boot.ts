import { dirname } from 'node:path';
import * as sea from 'node:sea';
import { Script } from 'node:vm';
import { MANIFEST_ASSET, openPayload } from './payload.ts';
// A type only: the value import would put the whole CLI into this small first script.
import type { Manifest } from './sea.ts';

// The single executable's first script (its SEA `main`, bundled by build.mjs). The service's
// bundle (src/runtime/sea.ts) is appended to the executable (src/runtime/payload.ts; the
// SEA asset `manifest.json` says where), with a V8 code cache that build.mjs
// makes *after* a warm-up start of `serve` (src/runtime/warm.ts). Node's own SEA code cache
// (`useCodeCache`) is made by compiling the script without running it, so it holds only the
// top level: every function, each dependency's module body among them, was still compiled at
// run time (~60 ms of a ~220 ms start, docs/performance.md). This one holds what a start runs.

export interface LoadedBundle {
  exports: Record<string, unknown>;
  /** V8 refused the cache (another Node or other V8 flags): the bundle was compiled as usual. */
  cacheRejected: boolean;
  script: Script;
}

/** The CommonJS wrapper, as Node's loader adds it: the cache is made for this exact source. */
const wrap = (source: string) => `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;

/** Compiles the bundle with the cache (when given) and runs its top level. */
export function loadBundle(
  source: string,
  cachedData: Uint8Array | undefined,
  filename: string,
  req: NodeJS.Require,
): LoadedBundle {
  const script = new Script(wrap(source), { filename, ...(cachedData ? { cachedData } : {}) });
  const run = script.runInThisContext() as (e: object, r: NodeJS.Require, m: object, f: string, d: string) => void;
  const module = { exports: {} as Record<string, unknown> };
  run.call(module.exports, module.exports, req, module, filename, dirname(filename));
  const cacheRejected = cachedData !== undefined && script.cachedDataRejected === true;
  return { exports: module.exports, cacheRejected, script };
}

if (sea.isSea()) {
  let source: string;
  let cache: Buffer;
  try {
    const manifest = JSON.parse(sea.getAsset(MANIFEST_ASSET, 'utf8')) as Manifest;
    const payload = openPayload(manifest.payload);
    cache = payload.read(manifest.cache);
    source = payload.read(manifest.app).toString('utf8');
  } catch (err) {
    process.stderr.write(`chargegate: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  // `require` here is the injected script's own: built-in modules only, as before.
  const { exports } = loadBundle(source, cache.byteLength ? cache : undefined, process.execPath, require);
  (exports.main as () => void)();
}
