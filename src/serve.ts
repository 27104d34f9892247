import type { Config } from './config.ts';
import { createApp } from './app.ts';
import { createLogger } from './log.ts';

/**
 * Runs the service until SIGTERM/SIGINT, then stops gracefully and exits 0. A second
 * signal while stopping exits at once (leases make that safe, only slower to resume).
 */
export async function serve(config: Readonly<Config>): Promise<void> {
  const log = createLogger(config.logLevel);
  const app = await createApp({ config, log });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      log.flush();
      process.exit(1);
    }
    log.info({ signal }, 'shutting down');
    app.stop().then(
      () => {
        log.flush();
        process.exit(0);
      },
      (err) => {
        log.error({ err: String(err) }, 'shutdown failed');
        log.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await app.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? `port ${config.port} on ${config.host} is already in use` : e.message;
    await app.stop().catch(() => undefined);
    throw new Error(`cannot start: ${why}`);
  }
}
