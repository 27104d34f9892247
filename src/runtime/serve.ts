import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { createApp } from '../app.ts';
import { createLogger } from '../observe/log.ts';

/** Writes out buffered log lines, then exits (pino's destination is asynchronous). */
function exitAfterFlush(log: Logger, code: number): void {
  log.flush(() => process.exit(code));
  // Should the flush itself hang, do not outlive the supervisor's patience.
  setTimeout(() => process.exit(code), 1000).unref();
}

/**
 * Runs the service until SIGTERM/SIGINT, then stops gracefully and exits 0. A second
 * signal while stopping exits at once (leases make that safe, only slower to resume).
 */
export async function serve(config: Readonly<Config>, version?: string): Promise<void> {
  const log = createLogger(config.logLevel);
  // The database cannot be trusted any more (see src/queue/dbfile.ts): stop as on SIGTERM, but
  // exit 1 so the supervisor (systemd Restart=on-failure) starts a fresh process.
  const onUnsafe = (err: Error) => {
    log.fatal({ err: err.message }, 'cannot go on safely; stopping for a restart');
    app.stop().then(
      () => exitAfterFlush(log, 1),
      () => exitAfterFlush(log, 1),
    );
  };
  const app = await createApp({ config, log, onFatal: onUnsafe, ...(version ? { version } : {}) });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      exitAfterFlush(log, 1);
      return;
    }
    log.info({ signal }, 'shutting down');
    app.stop().then(
      () => exitAfterFlush(log, 0),
      (err) => {
        log.error({ err: String(err) }, 'shutdown failed');
        exitAfterFlush(log, 1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  // Certificates rotate without a restart (README "TLS").
  process.on('SIGHUP', () => void app.reloadTls());
  process.on('SIGINT', onSignal);
  // A bug must not leave a half-working process: exit and let the supervisor restart it.
  // Nothing accepted is lost (it is on disk), claimed work resumes when its lease expires.
  const onFatal = (err: unknown) => {
    log.fatal({ err: err instanceof Error ? err.stack : String(err) }, 'fatal error; exiting');
    exitAfterFlush(log, 1);
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  try {
    await app.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? `port ${config.port} on ${config.host} is already in use` : e.code === 'EACCES' ? `no permission to listen on port ${config.port}` : e.message;
    await app.stop().catch(() => undefined);
    throw new Error(`cannot start: ${why}`);
  }
}
