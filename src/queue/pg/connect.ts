import postgres, { type Sql } from 'postgres';

// One place that opens PostgreSQL connections, with the settings every caller needs:
// bigint columns (ms timestamps, counts) as JavaScript numbers (exact to 2^53: 285,000
// years of ms), notices kept out of stdout, and the URL's password kept out of logs.

export interface ConnectOptions {
  /** Connections in the pool (groups in flight at once, plus reads). */
  max?: number;
  /** Shown in pg_stat_activity. */
  name?: string;
  /** Schema the tables live in (tests give each test its own); default: the server's search_path. */
  schema?: string;
}

/**
 * Reconnect delay in seconds after the n-th failed attempt: 50 ms doubling, at most 1 s.
 * The client's default grows to 20 s, and a query waits out that delay before it learns
 * the server is gone: an accept would hang for it instead of getting its 503 at once,
 * and the service would come back up to 20 s after the database did.
 */
const backoff = (n: number) => Math.min(0.05 * 2 ** n, 1) * (0.5 + Math.random() / 2);

export function connectPg(url: string, opts: ConnectOptions = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 4,
    backoff,
    // A server that does not answer a connect (not refused: a dropped route) fails it in 5 s, not 30.
    connect_timeout: 5,
    onnotice: () => undefined,
    connection: { application_name: opts.name ?? 'chargegate', ...(opts.schema ? { search_path: opts.schema } : {}) },
    types: {
      bigint: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) },
    },
  }) as unknown as Sql;
}

export { redactUrl } from '../../core/redact.ts';
