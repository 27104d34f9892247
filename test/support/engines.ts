import { after } from 'node:test';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { openDb, type Db } from '../../src/queue/db.ts';
import { migrate } from '../../src/queue/migrate.ts';
import { connectPg } from '../../src/queue/pg/connect.ts';
import { migratePg } from '../../src/queue/pg/migrate.ts';
import { createPgQueue } from '../../src/queue/pg/queue.ts';
import type { Queue } from '../../src/queue/queue.ts';
import { createSqliteQueue } from '../../src/queue/sqlite.ts';
import { PG_ADMIN_URL, pgReachable } from './pgadmin.ts';
import { tempDir } from './tmp.ts';

// The engines a test file runs against, from one source: SQLite always, PostgreSQL when a
// server answers at CHARGEGATE_TEST_PG (an admin connection; default the local one). Each
// test file gets a throwaway database, dropped after the file; each test its own schema.

export { PG_ADMIN_URL };
export const PG_SKIP = `PostgreSQL not reachable at ${PG_ADMIN_URL}: start one, or set CHARGEGATE_TEST_PG=postgres://user@host:port/db (an admin connection)`;

type T = { after: (fn: () => unknown) => void };

/** A queue on a fresh, migrated database, with raw SQL for assertions (`?` placeholders). */
export interface Opened {
  queue: Queue;
  /** Rows of a query written with `?` placeholders (both engines). */
  all<R = Record<string, unknown>>(text: string, ...params: unknown[]): Promise<R[]>;
  /** Another instance on the same database (PostgreSQL only). */
  another(opts?: QueueOpts): Promise<Opened>;
  /** Closes the instance's connections without a clean stop, as a kill -9 would. */
  kill(): Promise<void>;
  /** The SQLite connection; null on PostgreSQL. */
  db: Db | null;
  /** The connection URL (PostgreSQL) or file path (SQLite). */
  where: string;
  schema: string | null;
}

export interface QueueOpts {
  maxOpen?: number;
  /** AUTHORIZER_CACHE_MAX_ENTRIES (default 1000) and the unknown_tokens bound (default UNKNOWN_TOKENS_MAX). */
  maxCacheEntries?: number;
  maxUnknown?: number;
  now?: () => number;
  onCommit?: () => void;
}

export interface Engine {
  name: 'sqlite' | 'postgres';
  /** Set when the engine cannot run here: why, and how to enable it. */
  skip: string | false;
  open(t: T, opts?: QueueOpts): Promise<Opened>;
  /**
   * A fresh database for the real app: the settings that select it, and raw SQL on it
   * (`?` placeholders) for seeding and assertions beside the running service.
   */
  appDatabase(): Promise<AppDatabase>;
}

export interface AppDatabase {
  env: Record<string, string>;
  run(text: string, ...params: unknown[]): Promise<Array<Record<string, unknown>>>;
  /** Drops it: register with t.after once the app is started, so the app stops first (hooks run in order). */
  drop(): Promise<void>;
}

/** This file's throwaway database, dropped after the file (registered at the top level, on the root). */
async function fileDatabase(): Promise<string> {
  const name = `cg_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  after(async () => {
    const a = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => undefined });
    await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await a.end();
  });
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

const pgUrl = (await pgReachable()) ? await fileDatabase() : null;

const toDollars = (text: string) => {
  let i = 0;
  return text.replace(/\?/g, () => `$${++i}`);
};

async function openPg(t: T, url: string, schema: string, opts: QueueOpts): Promise<Opened> {
  const sql = connectPg(url, { schema, max: 4 });
  await sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await migratePg(sql);
  const life = connectPg(url, { schema, max: 1 });
  const queue = await createPgQueue(sql, {
    where: url, life, instanceId: randomBytes(8).toString('hex'), maxOpen: opts.maxOpen ?? 1_000_000,
    maxCacheEntries: opts.maxCacheEntries ?? 1000, ...(opts.maxUnknown ? { maxUnknown: opts.maxUnknown } : {}),
    keysRequired: false, ...(opts.now ? { now: opts.now } : {}), hooks: { onCommit: () => opts.onCommit?.() },
  });
  let closed = false;
  t.after(async () => {
    if (!closed) await queue.close().catch(() => undefined);
  });
  return {
    queue, db: null, where: url, schema,
    all: async (text, ...params) => Array.from(await sql.unsafe(toDollars(text), params as never[])) as never,
    another: (o = {}) => openPg(t, url, schema, o),
    async kill() {
      closed = true;
      await Promise.all([sql.end({ timeout: 0 }), life.end({ timeout: 0 })]);
    },
  };
}

export const ENGINES: Engine[] = [
  {
    name: 'sqlite',
    skip: false,
    async open(t, opts = {}) {
      const path = join(tempDir(t), 'q.db');
      const db = openDb(path, { busyTimeoutMs: 1000 });
      migrate(db);
      const queue = createSqliteQueue(db, {
        path, maxCacheEntries: opts.maxCacheEntries ?? 1000, ...(opts.maxUnknown ? { maxUnknown: opts.maxUnknown } : {}),
        keysRequired: false, ...(opts.now ? { now: opts.now } : {}),
        hooks: { onCommit: () => opts.onCommit?.() },
      });
      t.after(() => queue.close().catch(() => undefined));
      return {
        queue, db, where: path, schema: null,
        all: async (text, ...params) => db.prepare(text).all(...params) as never,
        another: () => Promise.reject(new Error('one instance per SQLite file (the lock)')),
        kill: async () => {
          db.close();
        },
      };
    },
    async appDatabase() {
      const dir = mkdtempSync(join(tmpdir(), 'cg-app-'));
      const path = join(dir, 'app.db');
      const db = openDb(path, { busyTimeoutMs: 5000 });
      migrate(db);
      return {
        env: { DB_PATH: path },
        drop: async () => {
          db.close();
          rmSync(dir, { recursive: true, force: true });
        },
        run: async (text, ...params) => {
          const st = db.prepare(text);
          return (st.reader ? st.all(...params) : (st.run(...params), [])) as Array<Record<string, unknown>>;
        },
      };
    },
  },
  {
    name: 'postgres',
    skip: pgUrl ? false : PG_SKIP,
    async open(t, opts = {}) {
      return openPg(t, pgUrl!, `t_${randomBytes(5).toString('hex')}`, opts);
    },
    async appDatabase() {
      // The app uses the server's default schema: a database of its own, dropped after the test.
      const name = `cg_test_app_${randomBytes(6).toString('hex')}`;
      const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => undefined });
      await admin.unsafe(`CREATE DATABASE ${name}`);
      const u = new URL(PG_ADMIN_URL);
      u.pathname = `/${name}`;
      const url = u.toString();
      const sql = connectPg(url, { max: 1 });
      await migratePg(sql);
      return {
        env: { DATABASE_URL: url },
        async drop() {
          await sql.end({ timeout: 1 });
          await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          await admin.end();
        },
        run: async (text, ...params) => Array.from(await sql.unsafe(toDollars(text), params as never[])),
      };
    },
  },
];
