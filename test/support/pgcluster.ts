import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './port.ts';

// A throwaway PostgreSQL cluster of a test's own (Debian's initdb + pg_ctl in a temp dir,
// on a free port, its unix socket in that dir), for tests that stop and start the server:
// the shared one at 127.0.0.1:5432 serves other test files at the same time. PostgreSQL
// refuses to run as root, so as root the cluster belongs to the `postgres` OS user.

const run = promisify(execFile);

/** Debian's binaries of the newest installed version, or null. */
function binDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const has = (v: string, cmd: string) => existsSync(join(root, v, 'bin', cmd));
  const versions = readdirSync(root).filter((v) => has(v, 'pg_ctl') && has(v, 'initdb'));
  versions.sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : null;
}

const BIN = binDir();
const AS_ROOT = userInfo().uid === 0;
export const CLUSTER_SKIP: string | false = BIN === null
  ? 'no PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin/initdb, pg_ctl): '
    + 'apt-get install postgresql to run this test'
  : false;

export interface Cluster {
  /** Admin URL (user postgres, trust) of database `postgres`. */
  url: string;
  port: number;
  start(): Promise<void>;
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** Stops (immediate) and removes the cluster. */
  destroy(): Promise<void>;
}

export async function startCluster(): Promise<Cluster> {
  if (BIN === null) throw new Error(String(CLUSTER_SKIP));
  const dir = mkdtempSync(join(tmpdir(), 'cg-pgcluster-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const port = await freePort();
  let uid: number | undefined;
  let gid: number | undefined;
  if (AS_ROOT) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: g } = await run('id', ['-g', 'postgres']);
    uid = Number(stdout.trim());
    gid = Number(g.trim());
    chownSync(dir, uid, gid);
  }
  const pg = (cmd: string, args: string[]) => (AS_ROOT
    ? run('runuser', ['-u', 'postgres', '--', join(BIN, cmd), ...args])
    : run(join(BIN, cmd), args));
  await pg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  const cluster: Cluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: async () => void (await pg('pg_ctl', ['-D', data, '-l', log, '-o', opts, '-w', '-t', '30', 'start'])),
    stop: async (mode) => void (await pg('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '30', 'stop'])),
    async destroy() {
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
