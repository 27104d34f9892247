import { Writable } from 'node:stream';
import { join } from 'node:path';
import pino from 'pino';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { appDir } from './tmp.ts';

/** Log lines captured as parsed JSON (pino writes to the injected stream). */
export function captureLog(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue;
        raw.push(line);
        lines.push(JSON.parse(line));
      }
      cb();
    },
  });
  return { log: pino({ level }, stream), lines, raw };
}

/** The real service in this process: temp db, port 0, real worker threads. */
export async function startApp(t: { after: (fn: () => unknown) => void }, env: Record<string, string> = {}) {
  let app: Awaited<ReturnType<typeof createApp>> | null = null;
  const dir = appDir(t, () => app?.stop());
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', DB_PATH: join(dir, 'cg.db'), WORKERS: '2', CALLBACK_RETRY_BASE_MS: '10', ...env });
  const captured = captureLog();
  app = await createApp({ config, log: captured.log });
  await app.start();
  return { app, config, dir, ...captured, base: `http://127.0.0.1:${app.server.info.port}` };
}

const TOKEN = 'ABCD-efgh1234567890_~valid.token';
const STATION = '123e4567-e89b-12d3-a456-426614174000';

/** One accepted request through the app's own router (Hapi inject); when it was sent, for latency. */
export async function submit(app: Pick<App, 'server'>, callback_url: string) {
  const at = Date.now();
  const res = await app.server.inject({
    method: 'POST',
    url: '/api/v1/charging-session',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ station_id: STATION, driver_token: TOKEN, callback_url }),
  });
  if (res.statusCode !== 202) throw new Error(`expected 202, got ${res.statusCode}: ${res.payload}`);
  return { id: (JSON.parse(res.payload) as { request_id: string }).request_id, at };
}
