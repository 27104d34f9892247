// npm run release: every artifact in dist/, then dist/SHA256SUMS over them.
//   chargegate-linux-x64, chargegate-linux-arm64       the single executables (build.mjs)
//   chargegate_<v>_amd64.deb, chargegate_<v>_arm64.deb  Debian packages (packaging/deb.mjs)
//   chargegate_<v>_amd64.oci.tar, .docker.tar           the container image as an OCI archive
//                                                      and a Docker archive (packaging/image.mjs)
// Needs what .ci/run installs: aarch64 binutils, qemu-user-static + arm64 libc, dpkg-deb,
// podman + runc, debootstrap (the image's local base when IMAGE_BASE is not given).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { buildDeb } from './deb.mjs';
import { buildImage } from './image.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const t0 = performance.now();
const say = (msg) => process.stdout.write(`release: ${msg} (${Math.round((performance.now() - t0) / 1000)} s)\n`);

const r = spawnSync(process.execPath, [join(root, 'build.mjs'), 'linux-x64', 'linux-arm64'], { stdio: 'inherit', cwd: root });
if (r.status !== 0) process.exit(r.status ?? 1);
const files = [join(root, 'dist', 'chargegate-linux-x64'), join(root, 'dist', 'chargegate-linux-arm64')];
for (const arch of ['amd64', 'arm64']) {
  files.push(buildDeb(arch));
  say(`${basename(files.at(-1))}`);
}
for (const f of buildImage('amd64')) {
  files.push(f);
  say(basename(f));
}

const sums = files.map((f) => `${createHash('sha256').update(readFileSync(f)).digest('hex')}  ${basename(f)}\n`).join('');
writeFileSync(join(root, 'dist', 'SHA256SUMS'), sums);
for (const f of files) {
  const size = statSync(f).size;
  const gz = f.endsWith('.deb') ? size : gzipSync(readFileSync(f), { level: 6 }).byteLength;
  say(`${basename(f)}: ${(size / 1048576).toFixed(1)} MiB, gzipped ${(gz / 1048576).toFixed(1)} MiB`);
}
say('wrote dist/SHA256SUMS');
