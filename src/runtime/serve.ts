import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { createApp, type App } from '../app.ts';
import { ChargegateError } from '../core/errors.ts';
import { newFiles } from './created.ts';
import { signalAction } from './signals.ts';
import { createLogger } from '../observe/log.ts';

/** Writes out buffered log lines, then exits (pino's destination is asynchronous). */
function exitAfterFlush(log: Logger, code: number): void {
  log.flush(() => process.exit(code));
  // Should the flush itself hang, do not outlive the supervisor's patience.
  setTimeout(() => process.exit(code), 1000).unref();
}

/**
 * Runs the service until SIGTERM/SIGINT, then stops gracefully and exits 0. A signal
 * repeated later during the stop exits at once (src/runtime/signals.ts).
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
  // Before anything is created: a HOST name that does not resolve is a setting to fix.
  await checkHostResolves(config);
  // A start that fails must not leave a database behind that it created (a typo in DB_PATH
  // with the port taken would otherwise leave an empty file to be found later).
  const created = newFiles(config.dbPath);
  let app: App;
  try {
    app = await createApp({ config, log, onFatal: onUnsafe, ...(version ? { version } : {}) });
  } catch (err) {
    created.remove();
    throw err;
  }
  let firstSignalAt: number | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    const action = signalAction(firstSignalAt, Date.now());
    if (action === 'ignore') {
      log.info({ signal }, 'stop already under way (a copy of the same stop request)');
      return;
    }
    if (action === 'exit_now') {
      log.warn({ signal }, 'stop signal repeated: exiting now without finishing the graceful stop');
      exitAfterFlush(log, 1);
      return;
    }
    firstSignalAt = Date.now();
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
    await app.stop().catch(() => undefined);
    created.remove();
    throw startError(err as NodeJS.ErrnoException, config);
  }
  // PORT=0 picks a free port: the operator must learn which even when info lines are off.
  if (!log.isLevelEnabled('info') && config.logLevel !== 'silent') {
    process.stderr.write(`chargegate: listening on ${config.host}:${app.server.info.port} (db ${config.dbPath})\n`);
  }
}

async function checkHostResolves(config: Readonly<Config>): Promise<void> {
  if (isIP(config.host)) return;
  try {
    await lookup(config.host);
  } catch (err) {
    throw startError(err as NodeJS.ErrnoException, config);
  }
}

/** Why the listener did not open, as one line naming the setting. */
function startError(e: NodeJS.ErrnoException, config: Readonly<Config>): Error {
  if (e.code === 'EADDRINUSE') return new Error(`cannot start: port ${config.port} on ${config.host} is already in use (PORT / --port)`);
  if (e.code === 'EACCES') return new Error(`cannot start: no permission to listen on port ${config.port} (PORT / --port; ports below 1024 need privileges)`);
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') {
    return new ChargegateError('CG_ERR_CONFIG', `invalid HOST=${JSON.stringify(config.host)}: the name does not resolve (HOST / --host)`);
  }
  if (e.code === 'EADDRNOTAVAIL') {
    return new ChargegateError('CG_ERR_CONFIG', `invalid HOST=${JSON.stringify(config.host)}: not an address of this machine (HOST / --host)`);
  }
  return new Error(`cannot start: ${e.message}`);
}
