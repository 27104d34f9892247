import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { compilePolicy } from './core/urlpolicy.ts';
import { createDispatcher, laneSizes } from './dispatch/dispatcher.ts';
import { createPool } from './dispatch/pool.ts';
import { createHealth, createWriteWatch } from './observe/health.ts';
import { createServer, type HttpLimits } from './http/server.ts';
import { loadTls } from './http/tls.ts';
import { createIntake, IDEMPOTENCY_TTL_MS } from './queue/intake.ts';
import { createMetrics } from './observe/metrics.ts';
import { createCheckpointer, type Checkpointer } from './queue/checkpointer.ts';
import { createDepth } from './queue/depth.ts';
import { openQueue } from './queue/open.ts';
import { createRetention } from './queue/retention.ts';
import { runtimePaths } from './runtime/paths.ts';

// Wires the service together; every part gets its dependencies passed in.

export interface AppOptions {
  config: Readonly<Config>;
  log: Logger;
  now?: () => number;
  random?: () => number;
  /** Connection limits of the HTTP listener (tests shorten the deadlines). */
  http?: Partial<HttpLimits>;
  /** Told when the service cannot go on safely and must be restarted (serve exits 1). */
  onFatal?: (err: Error) => void;
  /** The release, shown in the OpenAPI document. */
  version?: string;
}

const RESYNC_MS = 5000;

/** How often API keys' last-used times are written (when any key was used). */
const KEY_USAGE_FLUSH_MS = 60_000;

/** A listener others can reach: not loopback (127.0.0.0/8, ::1, localhost). */
function reachableFromOthers(host: string): boolean {
  return !(host === 'localhost' || host === '::1' || /^127\./.test(host));
}

export async function createApp(opts: AppOptions) {
  const { config, log } = opts;
  // Checked before anything is opened: a bad file is a bad setting (exit 2).
  const tls = config.tlsCertFile && config.tlsKeyFile ? loadTls(config.tlsCertFile, config.tlsKeyFile) : undefined;
  const now = opts.now ?? Date.now;
  const paths = runtimePaths();
  let metrics: ReturnType<typeof createMetrics> | null = null;
  const writes = createWriteWatch();
  // SQLite only: the WAL checkpoint off the event loop (src/queue/checkpointer.ts).
  let checkpointer: Checkpointer | null = null;
  // Set when the database can no longer be trusted until a restart; see openQueue.
  let onLost = (_why: string): void => undefined;
  const { queue, fault, db } = await openQueue(config, {
    log, now, nativeBinding: paths.nativeBinding,
    hooks: {
      onCommit: (ops, ms, changes) => {
        metrics?.committed(ops, ms);
        writes.committed(changes);
        checkpointer?.committed(changes);
      },
      onError: (err) => writes.failed(err),
    },
    onLost: (why) => onLost(why),
  });
  const depth = await createDepth(queue, config.queueMaxSize, { maxPerClient: config.queueMaxPerClient });
  const pool = createPool({ filename: paths.workerFile, threads: config.workers, concurrency: laneSizes(config).tasksPerThread });
  // A thread of its own, so a checkpoint's fsync on a slow disk holds up no decision or POST;
  // it ends 30 s after the last checkpoint, as the pool's threads do.
  const checkpoints = db ? createPool({ filename: paths.workerFile, threads: 1, concurrency: 1 }) : null;
  if (db && checkpoints) {
    db.pragma('wal_autocheckpoint = 0');
    const task = { dbPath: config.dbPath, nativeBinding: paths.nativeBinding };
    checkpointer = createCheckpointer({
      run: () => checkpoints.run(task, { name: 'checkpoint' }),
      fallback: () => queue.compact(),
      log,
    });
  }
  // Why the first thread did not start (src/dispatch/pool.ts starts threads with the work).
  let threadFault: string | null = null;
  const health = createHealth({
    // Writes nothing (an idle service leaves the disk alone); a full disk shows in failed commits.
    probeDb: () => queue.probe(),
    writeFault: writes.fault,
    fault,
    freeBytes: () => queue.freeBytes(),
    queue: () => ({ depth: depth.value, max: depth.max }),
    threads: () => ({ alive: pool.threads.length, configured: config.workers, error: threadFault }),
    authorizer: () => dispatcher.authorizerBreaker(),
    now,
  });
  const dispatcher = createDispatcher({
    config, queue, depth, pool, log, nativeBinding: paths.nativeBinding, now,
    ...(opts.random ? { random: opts.random } : {}),
    observer: {
      decided: (d) => metrics?.decided(d),
      attempted: (r) => {
        metrics?.attempted(r);
        health.attempted(r);
      },
    },
  });
  metrics = createMetrics({
    queueDepth: () => depth.value,
    queueMax: () => depth.max,
    oldestAgeSeconds: async () => {
      const at = await queue.oldestOpenCreatedAt();
      return at === null ? 0 : Math.max(0, (now() - at) / 1000);
    },
    deadLetters: () => queue.countFailed(),
    poolUtilization: () => pool.utilization,
    poolThreads: () => pool.threads.length,
    inFlight: () => dispatcher.inflight,
    lanes: () => dispatcher.lanes(),
    breakerOpen: () => {
      const b = dispatcher.authorizerBreaker();
      return b === null ? null : b.state === 'open' ? 1 : b.state === 'half_open' ? 0.5 : 0;
    },
  });
  // Work another instance left in the shared table (PostgreSQL) is looked for at once.
  queue.watch(() => dispatcher.kick());
  const intake = createIntake({ queue, depth, log, onAccepted: dispatcher.kick, handoff: dispatcher.handoff, now });
  const retention = createRetention({ queue, log, retentionDays: config.retentionDays, idempotencyTtlMs: IDEMPOTENCY_TTL_MS, now });
  onLost = () => {
    intake.close();
    opts.onFatal?.(new Error(fault() ?? 'database lost'));
  };
  let ready = false;
  // Set when stopping: answers carry Connection: close so keep-alive clients reconnect elsewhere.
  let draining = false;
  const registry = metrics.registry;
  const server = createServer({
    keyring: queue.keys,
    tls,
    maxConnections: config.maxConnections,
    metricsToken: config.metricsToken,
    host: config.host,
    port: config.port,
    intake,
    policy: compilePolicy(config.callbackAllowedHosts),
    reads: { get: (id) => queue.status(id) },
    log,
    health: {
      ready: () => ready && fault() === null && threadFault === null,
      check: () => health.check(),
      metrics: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
    },
    onSessionAnswer: (status, replayed) => metrics?.request(status, replayed),
    draining: () => draining,
    ...(opts.version ? { version: opts.version } : {}),
    ...(opts.http ? { limits: opts.http } : {}),
  });
  // Last-used times of API keys, to the minute; nothing is written while no key was used.
  const keyUsage = setInterval(() => {
    if (queue.keys.pending === 0) return;
    queue.keys.flushUsage().catch((err) => log.warn({ err: String(err) }, 'could not record API key use'));
  }, KEY_USAGE_FLUSH_MS);
  keyUsage.unref();
  // Only while no committed group awaits its fsync: such a group's rows are in the table but
  // the counter learns of them (accepted, finished) when the group settles, so a count taken
  // then would be applied twice. Under load there are such moments between commits; the
  // counter alone is exact meanwhile (resync corrects changes made by other processes).
  const resyncWhenSettled = (tries: number): void => {
    if (queue.unsettled > 0) {
      if (tries > 0) setTimeout(() => resyncWhenSettled(tries - 1), 1).unref();
      return;
    }
    depth.resync().catch((err) => log.warn({ err: String(err) }, 'queue depth resync failed'));
  };
  const resync = setInterval(() => resyncWhenSettled(100), RESYNC_MS);
  resync.unref();

  let stopping: Promise<void> | null = null;

  return {
    server,
    /** The SQLite connection (tests look into the file); null on PostgreSQL. */
    db: db!,
    queue,
    /**
     * SIGHUP: re-reads TLS_CERT_FILE and TLS_KEY_FILE; new handshakes use them, open
     * connections keep theirs. A bad pair is refused and the certificate in use stays.
     */
    reloadTls(): boolean {
      if (!config.tlsCertFile || !config.tlsKeyFile) return false;
      try {
        const next = loadTls(config.tlsCertFile, config.tlsKeyFile);
        (server.listener as import('node:https').Server).setSecureContext(next);
        log.info({ cert: config.tlsCertFile }, 'TLS certificate reloaded');
        return true;
      } catch (err) {
        log.error({ err: (err as Error).message }, 'TLS files not reloaded; the certificate in use stays');
        return false;
      }
    },
    depth,
    dispatcher,
    retention,
    async start(): Promise<void> {
      await server.start();
      dispatcher.start();
      retention.start();
      ready = true;
      // The first thread starts now, after the listener: requests are accepted (the main
      // thread's work) while it loads, and decisions begin once it answers. A thread that
      // cannot start makes /health DOWN and /health/ready 503.
      pool.run(null, { name: 'ping' }).catch((err: unknown) => {
        if (stopping) return;
        threadFault = `a worker thread cannot start: ${err instanceof Error ? err.message : String(err)}`;
        log.error({ err: threadFault }, 'worker thread failed to start');
      });
      const { address, port } = server.info;
      log.info({ address, port, db: queue.where, workers: config.workers, queue_open: depth.value, tls: tls !== undefined }, 'listening');
      if (reachableFromOthers(config.host) && !queue.keys.required()) {
        log.warn(
          { host: config.host },
          'the API is reachable from other hosts and anyone there may send requests: add a key per client (chargegate keys add <client>) or listen on 127.0.0.1 (HOST)',
        );
      }
    },
    /**
     * Graceful stop: refuse new requests, finish or release in-flight work, close the db.
     * The listener stays open while the work drains, answering POST with 503 + Retry-After
     * and /health/ready with 503 (Connection: close), so a load balancer or client sees
     * "not here, retry" rather than connection refused; then it closes.
     */
    stop(): Promise<void> {
      stopping ??= (async () => {
        ready = false;
        draining = true;
        intake.close();
        clearInterval(resync);
        clearInterval(keyUsage);
        await retention.stop();
        const { released } = await dispatcher.stop(config.shutdownTimeoutMs);
        await server.stop({ timeout: Math.min(5000, config.shutdownTimeoutMs) });
        await pool.destroy();
        await checkpointer?.stop();
        await checkpoints?.destroy();
        // Last: on SQLite this releases the file's lock, and another chargegate may start on it.
        await queue.close();
        log.info({ released }, 'stopped');
      })();
      return stopping;
    },
  };
}

export type App = Awaited<ReturnType<typeof createApp>>;
