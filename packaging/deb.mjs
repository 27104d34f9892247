// Builds dist/chargegate_<version>_<arch>.deb for amd64 and arm64 from the executables
// build.mjs made (dist/chargegate-linux-x64, -arm64), with dpkg-deb alone (no debhelper):
// /usr/bin/chargegate, the systemd unit from packaging/, /etc/chargegate/chargegate.env
// as a conffile, and the maintainer scripts in packaging/deb/.
//
//   node packaging/deb.mjs [amd64] [arm64]     (default: every arch whose executable exists)
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const here = join(root, 'packaging', 'deb');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const ARCHES = { amd64: 'linux-x64', arm64: 'linux-arm64' };
// xz makes the smallest package (~27 MB vs ~40 MB with gzip) but takes ~1.5 min per arch
// on a 2-core box; the tests, which check contents and behaviour, ask for gzip.
const COMPRESSION = process.env.DEB_COMPRESSION ?? 'xz';
if (!['xz', 'gzip'].includes(COMPRESSION)) throw new Error(`DEB_COMPRESSION=${COMPRESSION}: xz or gzip`);
/** Where the packages go: dist/, or DEB_OUT_DIR (the tests' packages stay out of the release's). */
const OUT_DIR = process.env.DEB_OUT_DIR ? join(root, process.env.DEB_OUT_DIR) : dist;

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function put(stage, path, data, mode) {
  const file = join(stage, path);
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  writeFileSync(file, data);
  chmodSync(file, mode);
}

/** The unit from packaging/, pointed at the packaged binary and docs. */
function unit() {
  const text = readFileSync(join(root, 'packaging', 'chargegate.service'), 'utf8');
  const out = text
    .replace('ExecStart=/usr/local/bin/chargegate serve', 'ExecStart=/usr/bin/chargegate serve')
    .replace('Documentation=file:///usr/local/share/doc/chargegate/README.md', 'Documentation=file:///usr/share/doc/chargegate/README.md.gz')
    .replace('# Install: see README "Operating chargegate". Overrides: systemctl edit chargegate', '# Installed by the chargegate Debian package. Overrides: systemctl edit chargegate');
  if (!out.includes('ExecStart=/usr/bin/chargegate serve') || !out.includes('EnvironmentFile=-/etc/chargegate/chargegate.env')) {
    throw new Error('packaging/chargegate.service changed: update packaging/deb.mjs');
  }
  return out;
}

// Reproducible gzip: no name, no time in the header.
const gz = (text) => gzipSync(Buffer.from(text), { level: 9 });

function changelog() {
  return `chargegate (${pkg.version}) unstable; urgency=medium\n\n  * Release ${pkg.version}; see README.md.gz.\n\n -- chargegate developers <dev@chargegate.invalid>  Mon, 30 Nov 2026 12:00:00 +0000\n`;
}

function copyright() {
  return `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: chargegate

Files: *
Copyright: chargegate developers
License: other
 Proprietary (UNLICENSED). The executable embeds Node.js (MIT and the licenses
 of its bundled libraries) and better-sqlite3 with SQLite (MIT; public domain).
`;
}

/** What a package is made of: when it matches the last build's, the .deb is up to date. */
function inputsKey(exe) {
  const h = createHash('sha256');
  const st = statSync(exe);
  h.update(`${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${COMPRESSION}\n`);
  for (const f of [fileURLToPath(import.meta.url), join(root, 'package.json'), join(root, 'README.md'), join(root, 'packaging', 'chargegate.service')]) h.update(readFileSync(f));
  for (const f of readdirSync(here).sort()) h.update(f).update(readFileSync(join(here, f)));
  return h.digest('hex');
}

export function buildDeb(arch) {
  const exe = join(dist, `chargegate-${ARCHES[arch]}`);
  if (!existsSync(exe)) throw new Error(`${relative(root, exe)} missing: run npm run build`);
  mkdirSync(OUT_DIR, { recursive: true });
  const out = join(OUT_DIR, `chargegate_${pkg.version}_${arch}.deb`);
  const stampFile = join(OUT_DIR, `.chargegate_${arch}.deb.json`);
  const key = inputsKey(exe);
  try {
    const stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
    const st = statSync(out);
    if (stamp.key === key && stamp.size === st.size && stamp.mtimeMs === st.mtimeMs) return out;
  } catch {}
  const stage = mkdtempSync(join(dist, `.deb-${arch}-`));
  try {
    chmodSync(stage, 0o755);
    const bin = join(stage, 'usr', 'bin', 'chargegate');
    mkdirSync(dirname(bin), { recursive: true, mode: 0o755 });
    copyFileSync(exe, bin);
    chmodSync(bin, 0o755);
    put(stage, 'lib/systemd/system/chargegate.service', unit(), 0o644);
    put(stage, 'etc/chargegate/chargegate.env', readFileSync(join(here, 'chargegate.env')), 0o640);
    put(stage, 'usr/share/doc/chargegate/copyright', copyright(), 0o644);
    put(stage, 'usr/share/doc/chargegate/changelog.gz', gz(changelog()), 0o644);
    put(stage, 'usr/share/doc/chargegate/README.md.gz', gz(readFileSync(join(root, 'README.md'), 'utf8')), 0o644);
    put(stage, 'usr/share/lintian/overrides/chargegate', readFileSync(join(here, 'lintian-overrides')), 0o644);

    const files = [];
    const walk = (d) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          chmodSync(p, 0o755);
          walk(p);
        } else files.push(p);
      }
    };
    walk(stage);
    const md5 = files
      .filter((f) => !relative(stage, f).startsWith('etc/'))
      .sort()
      .map((f) => `${createHash('md5').update(readFileSync(f)).digest('hex')}  ${relative(stage, f)}\n`)
      .join('');
    const installedKiB = Math.ceil(files.reduce((n, f) => n + statSync(f).size, 0) / 1024);

    const control = `Package: chargegate
Version: ${pkg.version}
Architecture: ${arch}
Maintainer: chargegate developers <dev@chargegate.invalid>
Installed-Size: ${installedKiB}
Depends: libc6 (>= 2.34), libgcc-s1, libstdc++6, passwd
Section: net
Priority: optional
Description: asynchronous EV-charging authorization gateway
 chargegate accepts "may this driver token charge at this station?" requests
 over HTTP, commits each one to an embedded SQLite database, decides in
 worker threads (local access list, optional upstream authorizer with
 offline rules) and POSTs the signed decision to the client's callback URL,
 with retries.
 .
 One self-contained executable (Node.js inside) run by a systemd unit as the
 chargegate user; data in /var/lib/chargegate, settings in
 /etc/chargegate/chargegate.env.
`;
    put(stage, 'DEBIAN/control', control, 0o644);
    put(stage, 'DEBIAN/conffiles', '/etc/chargegate/chargegate.env\n', 0o644);
    put(stage, 'DEBIAN/md5sums', md5, 0o644);
    for (const s of ['postinst', 'prerm', 'postrm']) put(stage, `DEBIAN/${s}`, readFileSync(join(here, s)), 0o755);

    const tmp = `${out}.${process.pid}.tmp`;
    run('dpkg-deb', ['--root-owner-group', `-Z${COMPRESSION}`, '--build', stage, tmp]);
    renameSync(tmp, out);
    const st = statSync(out);
    writeFileSync(stampFile, JSON.stringify({ key, size: st.size, mtimeMs: st.mtimeMs }) + '\n');
    return out;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const asked = process.argv.slice(2);
  const arches = asked.length ? asked : Object.keys(ARCHES).filter((a) => existsSync(join(dist, `chargegate-${ARCHES[a]}`)));
  for (const a of arches) {
    if (!ARCHES[a]) throw new Error(`unknown arch ${a}; known: ${Object.keys(ARCHES).join(', ')}`);
    const t0 = performance.now();
    const out = buildDeb(a);
    process.stdout.write(`deb: wrote ${relative(root, out)}: ${(statSync(out).size / 1048576).toFixed(1)} MiB (${Math.round(performance.now() - t0)} ms)\n`);
  }
}
