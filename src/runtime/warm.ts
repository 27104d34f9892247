import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBundle } from './boot.ts';

// Build time only: makes the code cache of the executable's bundle (src/runtime/boot.ts says
// why). build.mjs bundles this file and runs it with the Node that ships (the arm64 one under
// qemu), since a V8 code cache fits only the V8 and flags that made it:
//
//   node warm.cjs make <app.cjs> <out.cache> <folder> <addon> <task.cjs> <piscina-worker.cjs>
//     starts `serve` on 127.0.0.1, port 0, database in <folder>; once it listens, writes
//     the cache and exits (the folder is the build's to remove);
//   node warm.cjs check <app.cjs> <cache>
//     exits 1 when V8 refuses the cache for this Node.

const [mode, appFile, cacheFile, ...rest] = process.argv.slice(2);
const source = readFileSync(appFile!, 'utf8');

if (mode === 'make') {
  const [dir, nativeBinding, workerFile, piscinaWorker] = rest as [string, string, string, string];
  // Compiled as the executable compiles it (same source, same wrapper); what the start runs
  // is then compiled too, and the cache taken afterwards holds it.
  const { exports, script } = loadBundle(source, undefined, process.execPath, require);
  const warm = exports.warm as (p: object, argv: string[], env: Record<string, string>) => Promise<number>;
  const argv = ['serve', '--host', '127.0.0.1', '--port', '0', '--db', join(dir, 'warm.db')];
  warm({ nativeBinding, workerFile, piscinaWorker }, argv, {}).then((code) => {
    if (code !== 0) throw new Error(`the warm-up start exited ${code}`);
    writeFileSync(cacheFile!, script.createCachedData());
    process.exit(0);
  });
} else if (mode === 'check') {
  const { cacheRejected } = loadBundle(source, readFileSync(cacheFile!), process.execPath, require);
  if (cacheRejected) {
    process.stderr.write(`V8 refused the code cache ${cacheFile} for ${appFile}\n`);
    process.exitCode = 1;
  }
} else {
  process.stderr.write('usage: warm.cjs make|check ...\n');
  process.exitCode = 2;
}
