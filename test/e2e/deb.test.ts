import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import pkg from '../../package.json' with { type: 'json' };
import { buildBinary, minimalEnv, runBinary, serveAndAwaitCallback } from '../support/binary.ts';
import { waitFor } from '../support/tmp.ts';
// @ts-expect-error plain ESM build script without types
import { ensureRootfs, rootfsMissing } from '../../packaging/rootfs.mjs';

// The Debian packages built by packaging/deb.mjs: their metadata, lintian, and the amd64
// one installed with dpkg into a throwaway Debian root (debootstrap minbase), where the
// installed binary runs as the `chargegate` user: serve, a POST, its callback, SIGTERM.
// Then remove keeps the data and purge deletes it.

const exec = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const STATION = '123e4567-e89b-12d3-a456-426614174000';
const TOKEN = 'ABCD-efgh1234567890_~valid.token';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const skip = !has('dpkg-deb') ? 'dpkg-deb not installed (Debian: dpkg)' : process.getuid?.() !== 0 ? 'installing into a throwaway root needs root (chroot, mount)' : (rootfsMissing() as string | undefined);
const deb = (arch: string) => join(root, 'dist', 'test', `chargegate_${pkg.version}_${arch}.deb`);

describe('the Debian packages', { timeout: 900_000, skip }, () => {
  let dir: string;
  let fs: string;
  let procMounted = false;

  before(async () => {
    await buildBinary();
    const arches = ['amd64', ...(existsSync(join(root, 'dist', 'chargegate-linux-arm64')) ? ['arm64'] : [])];
    // gzip: the same contents as the release's xz packages, built in seconds.
    await exec(process.execPath, [join(root, 'packaging', 'deb.mjs'), ...arches], { cwd: root, maxBuffer: 16 << 20, env: { ...process.env, DEB_COMPRESSION: 'gzip', DEB_OUT_DIR: 'dist/test' } });
    dir = mkdtempSync(join(tmpdir(), 'cg-deb-'));
    fs = join(dir, 'root');
    execFileSync('cp', ['-a', ensureRootfs(), fs]);
  });
  after(() => {
    if (procMounted) execFileSync('umount', ['-l', join(fs, 'proc')]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('metadata: version, arch, dependencies, the conffile, the unit reads it', async () => {
    const field = (f: string, arch = 'amd64') => execFileSync('dpkg-deb', ['-f', deb(arch), f], { encoding: 'utf8' }).trim();
    assert.equal(field('Package'), 'chargegate');
    assert.equal(field('Version'), pkg.version);
    assert.equal(field('Architecture'), 'amd64');
    assert.match(field('Depends'), /libc6 \(>= 2\.34\)/);
    const conffiles = execFileSync('sh', ['-c', `dpkg-deb --ctrl-tarfile ${deb('amd64')} | tar -xO ./conffiles`], { encoding: 'utf8' });
    assert.equal(conffiles, '/etc/chargegate/chargegate.env\n');
    const unit = execFileSync('sh', ['-c', `dpkg-deb --fsys-tarfile ${deb('amd64')} | tar -xO ./lib/systemd/system/chargegate.service`], { encoding: 'utf8' });
    assert.match(unit, /^EnvironmentFile=-\/etc\/chargegate\/chargegate\.env$/m);
    assert.match(unit, /^ExecStart=\/usr\/bin\/chargegate serve$/m);
    assert.match(unit, /^User=chargegate$/m);
    if (existsSync(deb('arm64'))) {
      assert.equal(field('Architecture', 'arm64'), 'arm64');
      const head = execFileSync('sh', ['-c', `dpkg-deb --fsys-tarfile ${deb('arm64')} 2>/dev/null | tar -xO ./usr/bin/chargegate 2>/dev/null | head -c 20`]);
      assert.equal(head.readUInt16LE(18), 183, 'usr/bin/chargegate is an aarch64 ELF');
    }
  });

  test('lintian: no errors or warnings (remaining tags are overridden with a reason)', { skip: has('lintian') ? false : 'lintian not installed (Debian: lintian)' }, async () => {
    for (const arch of ['amd64', 'arm64']) {
      if (!existsSync(deb(arch))) continue;
      const r = await exec('lintian', ['--info', deb(arch)], { maxBuffer: 16 << 20 }).catch((e: { stdout: string; stderr: string }) => e);
      const tags = r.stdout.split('\n').filter((l) => /^[EWI]: /.test(l));
      assert.deepEqual(tags, [], `${arch}:\n${r.stdout}${r.stderr}`);
    }
  });

  test('install into a throwaway root, run as the chargegate user, remove keeps data, purge deletes it', async (t) => {
    const dpkg = (...args: string[]) => execFileSync('dpkg', [`--root=${fs}`, `--log=${join(fs, 'var', 'log', 'dpkg.log')}`, ...args], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    dpkg('-i', deb('amd64'));
    const passwd = readFileSync(join(fs, 'etc', 'passwd'), 'utf8');
    const user = passwd.split('\n').find((l) => l.startsWith('chargegate:'));
    assert.ok(user, 'the chargegate user exists');
    assert.match(user, /:\/var\/lib\/chargegate:\/usr\/sbin\/nologin$/);
    const uid = Number(user.split(':')[2]);
    const data = statSync(join(fs, 'var', 'lib', 'chargegate'));
    assert.equal(data.uid, uid);
    assert.equal(data.mode & 0o777, 0o750);
    assert.equal(statSync(join(fs, 'etc', 'chargegate', 'chargegate.env')).mode & 0o777, 0o640);
    // No systemd runs in the root: the scripts did not try to enable anything.
    assert.ok(!existsSync(join(fs, 'etc', 'systemd', 'system', 'multi-user.target.wants', 'chargegate.service')));
    // Installing the same version again runs postinst as an upgrade.
    dpkg('-i', deb('amd64'));

    execFileSync('mount', ['-t', 'proc', 'proc', join(fs, 'proc')]);
    procMounted = true;
    // The installed binary, in the root, as the service user (exec: signals reach it).
    const bin = join(dir, 'chargegate-in-root');
    writeFileSync(bin, `#!/bin/sh\nexec /usr/sbin/chroot --userspec=chargegate:chargegate ${fs} /usr/bin/chargegate "$@"\n`);
    chmodSync(bin, 0o755);
    const env = minimalEnv({
      DB_PATH: '/var/lib/chargegate/chargegate.db',
      CHARGEGATE_CACHE_DIR: '/var/lib/chargegate/cache',
      PORT: '0',
      HOST: '127.0.0.1',
      WORKERS: '2',
    });
    const version = await runBinary(bin, ['--version'], { cwd: dir, env });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, new RegExp(`^chargegate ${pkg.version.replaceAll('.', '\\.')} `));
    const add = await runBinary(bin, ['acl', 'add', TOKEN], { cwd: dir, env });
    assert.equal(add.code, 0, add.stderr);

    const { server, port, request_id, call } = await serveAndAwaitCallback(t, bin, { cwd: dir, env });
    assert.deepEqual(call.json, { station_id: STATION, driver_token: TOKEN, status: 'allowed' });
    const exit = await server.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, server.stderr());
    // The database belongs to the service user.
    assert.equal(statSync(join(fs, 'var', 'lib', 'chargegate', 'chargegate.db')).uid, uid);
    execFileSync('umount', [join(fs, 'proc')]);
    procMounted = false;

    dpkg('-r', 'chargegate');
    assert.ok(!existsSync(join(fs, 'usr', 'bin', 'chargegate')));
    assert.ok(existsSync(join(fs, 'var', 'lib', 'chargegate', 'chargegate.db')), 'remove keeps the data');
    assert.ok(existsSync(join(fs, 'etc', 'chargegate', 'chargegate.env')), 'remove keeps the settings');
    dpkg('-P', 'chargegate');
    assert.ok(!existsSync(join(fs, 'var', 'lib', 'chargegate')), 'purge deletes the data');
    assert.ok(!existsSync(join(fs, 'etc', 'chargegate')), 'purge deletes the settings');
  });
});
