// A minimal Debian 12 root file system made with debootstrap (--variant=minbase), cached
// in node_modules/.cache/chargegate-sea/rootfs-bookworm: the throwaway root the .deb test
// installs into, and the local base image of the container build where no registry is
// reachable. Needs root and debootstrap; the mirror is the machine's own apt mirror.
//
//   node packaging/rootfs.mjs     prints the folder, making it first if needed (~30-60 s)
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = join(root, 'node_modules', '.cache', 'chargegate-sea');
export const ROOTFS = join(cacheDir, 'rootfs-bookworm');

/** The first Debian mirror apt is configured with (deb822 or one-line form). */
export function debianMirror() {
  const files = [];
  for (const d of ['/etc/apt/sources.list.d']) {
    try {
      for (const f of readdirSync(d)) if (/\.(sources|list)$/.test(f)) files.push(join(d, f));
    } catch {}
  }
  files.push('/etc/apt/sources.list');
  for (const f of files) {
    let text;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    const m = text.match(/^URIs:\s*(\S+\/debian)\/?\s*$/m) ?? text.match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+/m);
    if (m) return m[1];
  }
  return 'http://deb.debian.org/debian';
}

/** Why a root file system cannot be made here, or undefined. */
export function rootfsMissing() {
  if (existsSync(join(ROOTFS, 'usr', 'bin', 'dpkg'))) return undefined;
  if (process.getuid?.() !== 0) return 'debootstrap needs root';
  if (spawnSync('sh', ['-c', 'command -v debootstrap'], { stdio: 'ignore' }).status !== 0) return 'debootstrap not installed (Debian: debootstrap)';
  return undefined;
}

/** The cached root file system, made once; concurrent callers race safely (temp dir + rename). */
export function ensureRootfs() {
  if (existsSync(join(ROOTFS, 'usr', 'bin', 'dpkg'))) return ROOTFS;
  const why = rootfsMissing();
  if (why) throw new Error(why);
  mkdirSync(cacheDir, { recursive: true });
  const tmp = mkdtempSync(join(cacheDir, 'work-rootfs-'));
  try {
    const r = spawnSync('debootstrap', ['--variant=minbase', 'bookworm', tmp, debianMirror()], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`debootstrap exited ${r.status}:\n${r.stdout.slice(-2000)}${r.stderr.slice(-2000)}`);
    // apt's lists and caches are not needed to install a local .deb or to run a binary.
    for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      for (const f of readdirSync(join(tmp, d))) if (f.endsWith('.deb') || f.endsWith('_Packages')) rmSync(join(tmp, d, f), { force: true });
    }
    // mkdtemp made it 0700: as "/" it must let every user through.
    chmodSync(tmp, 0o755);
    try {
      renameSync(tmp, ROOTFS);
    } catch (err) {
      if (!existsSync(join(ROOTFS, 'usr', 'bin', 'dpkg'))) throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return ROOTFS;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${ensureRootfs()}\n`);
}
