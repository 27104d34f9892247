// The container image, built with podman (no Docker engine needed) from the Dockerfile,
// and saved as an OCI archive, dist/chargegate_<version>_<arch>.oci.tar, and as a Docker
// archive, .docker.tar (the only one of the two that keeps the HEALTHCHECK).
//
//   node packaging/image.mjs [amd64] [arm64]      (default: amd64)
//
// BASE: IMAGE_BASE when set (e.g. debian:bookworm-slim from a registry), else a local
// Debian 12 base imported from packaging/rootfs.mjs's debootstrap root (no registry needed).
// podman runs with runc and cgroupfs, and with a containers.conf that clears the default
// ulimits, which this kind of machine refuses (see docs/building.md).
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { ensureRootfs } from './rootfs.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = join(root, 'node_modules', '.cache', 'chargegate-sea');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
export const BASE_IMAGE = 'localhost/chargegate-base-bookworm:2';
// Left out of the local base, as debian:bookworm-slim leaves them out (~40 MB of 128 MB).
const SLIM = ['./usr/share/locale/*', './usr/share/man/*', './usr/share/info/*', './usr/share/doc/*/changelog*', './usr/share/doc/*/NEWS*'];
export const podmanArgs = ['--runtime', 'runc', '--cgroup-manager=cgroupfs'];
const EXE = { amd64: 'dist/chargegate-linux-x64', arm64: 'dist/chargegate-linux-arm64' };

/** The environment for podman: CONTAINERS_CONF points at our small containers.conf unless one is set. */
export function podmanEnv() {
  if (process.env.CONTAINERS_CONF) return process.env;
  const conf = join(cacheDir, 'containers.conf');
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(conf, '[containers]\ndefault_ulimits = []\n');
  return { ...process.env, CONTAINERS_CONF: conf };
}

function podman(args, opts = {}) {
  const r = spawnSync('podman', [...podmanArgs, ...args], { encoding: 'utf8', env: podmanEnv(), maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new Error(`podman: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.status}:\n${(r.stdout ?? '').slice(-2000)}${(r.stderr ?? '').slice(-2000)}`);
  return r.stdout;
}

export function localBase() {
  if (spawnSync('podman', [...podmanArgs, 'image', 'exists', BASE_IMAGE], { env: podmanEnv() }).status === 0) return BASE_IMAGE;
  const excludes = SLIM.map((p) => `--exclude='${p}'`).join(' ');
  const r = spawnSync('sh', ['-c', `tar -C "$1" ${excludes} -c . | podman ${podmanArgs.join(' ')} import - "$2"`, 'sh', ensureRootfs(), BASE_IMAGE], { env: podmanEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`podman import: ${r.stderr}`);
  return BASE_IMAGE;
}

export function buildImage(arch) {
  const base = process.env.IMAGE_BASE || localBase();
  const tag = `localhost/chargegate:${pkg.version}-${arch}`;
  podman(['build', '--format', 'docker', '--network', 'host', '--platform', `linux/${arch}`, '--build-arg', `BASE=${base}`, '--build-arg', `EXE=${EXE[arch]}`, '-t', tag, root]);
  const out = join(root, 'dist', `chargegate_${pkg.version}_${arch}.oci.tar`);
  const tmp = `${out}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  podman(['save', '--format', 'oci-archive', '-o', tmp, tag]);
  renameSync(tmp, out);
  // The OCI image config has no health check field: the OCI archive loses HEALTHCHECK
  // (compose.yaml declares it again). The Docker archive keeps it, and every docker loads it.
  const docker = join(root, 'dist', `chargegate_${pkg.version}_${arch}.docker.tar`);
  rmSync(tmp, { force: true });
  podman(['save', '--format', 'docker-archive', '-o', tmp, tag]);
  renameSync(tmp, docker);
  return [out, docker];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arches = process.argv.slice(2).length ? process.argv.slice(2) : ['amd64'];
  for (const a of arches) {
    if (!EXE[a]) throw new Error(`unknown arch ${a}`);
    for (const out of buildImage(a)) process.stdout.write(`image: wrote ${relative(root, out)}\n`);
  }
}
