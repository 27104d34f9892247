import { join } from 'node:path';
import { createApp } from '../../../src/app.ts';
import { loadConfig } from '../../../src/config.ts';
import type { HttpLimits } from '../../../src/http/server.ts';
import { captureLog } from '../../support/app.ts';
import { appDir } from '../../support/tmp.ts';

// The real service wired as in production (src/app.ts), listening on 127.0.0.1:0, with its
// dispatcher stopped: accepted rows stay queued and nothing is ever called back. For input
// tests whose accepted requests name callback hosts that must not be contacted.

export async function startIntake(t: { after: (fn: () => unknown) => void }, opts: { env?: Record<string, string>; http?: Partial<HttpLimits> } = {}) {
  let app: Awaited<ReturnType<typeof createApp>> | null = null;
  const dir = appDir(t, () => app?.stop());
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', DB_PATH: join(dir, 'cg.db'), WORKERS: '1', SHUTDOWN_TIMEOUT_MS: '100', ...opts.env });
  const captured = captureLog();
  app = await createApp({ config, log: captured.log, ...(opts.http ? { http: opts.http } : {}) });
  // Stopped before it ever ran: accepts are committed as 'queued' and never claimed.
  await app.dispatcher.stop(0);
  await app.server.start();
  const count = app.db.prepare('SELECT (SELECT COUNT(*) FROM charging_requests) + (SELECT COUNT(*) FROM idempotency_keys)').pluck();
  return {
    app,
    config,
    ...captured,
    port: app.server.info.port as number,
    /** Rows the API wrote (requests and idempotency keys). */
    rows: () => count.get() as number,
  };
}

export type Intake = Awaited<ReturnType<typeof startIntake>>;
