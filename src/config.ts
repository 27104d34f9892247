import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { ChargegateError } from './core/errors.ts';
import type { ProxySettings } from './core/types.ts';
import { compilePolicy } from './core/urlpolicy.ts';

// The only reader of process.env. Flags win over environment variables, which win over
// defaults (SPEC §6); every value is validated here and the result is frozen.

export interface Config {
  port: number;
  host: string;
  dbPath: string;
  /** PostgreSQL (postgres://…): several instances share it; null = the SQLite file at dbPath. */
  databaseUrl: string | null;
  authorizationTimeoutMs: number;
  callbackTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  queueMaxSize: number;
  workers: number;
  callbackMaxAttempts: number;
  callbackRetryBaseMs: number;
  callbackRetryMaxMs: number;
  callbackSigningSecret: string | null;
  callbackAllowedHosts: string[] | null;
  authorizerUrl: string | null;
  authorizerProtocol: 'json' | 'ocpi';
  authorizerToken: string | null;
  /** Upstream authorizer calls in flight at once, over all worker threads. */
  authorizerMaxConcurrency: number;
  /** Consecutive upstream failures that open the circuit breaker. */
  authorizerBreakerFailures: number;
  /** How long the breaker stays open before one probe call. */
  authorizerBreakerOpenMs: number;
  /** Freshness of a cached upstream `allowed` when the answer does not say (0 = no caching). */
  authorizerCacheTtlS: number;
  /** Freshness of a cached upstream `not_allowed` when the answer does not say. */
  authorizerCacheNegativeTtlS: number;
  /** Bound of the authorizer_cache table (least recently used entries go first). */
  authorizerCacheMaxEntries: number;
  /** How old a cached `allowed` may be and still decide while the upstream cannot answer. */
  offlineCacheMaxAgeS: number;
  /** While the upstream cannot answer, allow tokens nobody knows (OCPP AllowOfflineTxForUnknownId). */
  offlineAllowUnknown: boolean;
  retentionDays: number;
  cacheDir: string | null;
  /** Grace period for in-flight work on SIGTERM before leases are released. */
  shutdownTimeoutMs: number;
  /** Callback POSTs one worker thread has in flight at once: the delivery lane is WORKERS x this. */
  workerConcurrency: number;
  /** Callback POSTs in flight to one origin (scheme://host:port) at once; at most half the delivery lane. */
  callbackMaxInFlightPerOrigin: number;
  /** Forward proxy for http: callbacks and upstream calls (HTTP_PROXY / http_proxy). */
  httpProxy: string | null;
  /** Forward proxy for https: targets (HTTPS_PROXY / https_proxy). */
  httpsProxy: string | null;
  /** Hosts reached without the proxy (NO_PROXY / no_proxy). */
  noProxy: string | null;
  /** Ask every caller for an API key even before one exists (locks the API until `keys add`). */
  apiKeysRequired: boolean;
  /** Open requests one API client may have at once (its share of QUEUE_MAX_SIZE); null = half of it. */
  queueMaxPerClient: number | null;
  /** PEM certificate chain and key: the listener speaks HTTPS (re-read on SIGHUP). */
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  /** Connections the listener holds at once; past it new ones are closed at once. */
  maxConnections: number;
  /** When set, GET /metrics asks for Authorization: Bearer <this> (Prometheus `authorization`). */
  metricsToken: string | null;
}

type Source = Record<string, string | undefined>;

/** Where the database lives unless DB_PATH or --db says otherwise (SPEC §6). */
export const DEFAULT_DB_PATH = './data/chargegate.db';

/** The database a command works on: --db, else DB_PATH, else the default; the one rule for every command. */
export function dbPathFrom(env: Source, dbFlag?: string): string {
  return dbFlag ?? (env.DB_PATH || DEFAULT_DB_PATH);
}

/** The last value of `--name <v>` / `--name=v` in argv, before the command line is parsed. */
function flagValue(argv: readonly string[], name: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === name && i + 1 < argv.length) found = argv[++i];
    else if (a.startsWith(`${name}=`)) found = a.slice(name.length + 1);
  }
  return found;
}

/**
 * What the executable must know before any command runs (it unpacks its addon and worker
 * files first): the cache folder the operator chose, and the database whose folder is the
 * default home of that cache. Invalid values are left for loadConfig / the CLI to report.
 */
export function unpackSettings(env: Source, argv: readonly string[]): UnpackSettings {
  const dbPath = dbPathFrom(env, flagValue(argv, '--db') || undefined);
  const flag = flagValue(argv, '--cache-dir');
  if (flag) return { cacheDir: flag, cacheDirFrom: '--cache-dir', dbPath };
  if (env.CHARGEGATE_CACHE_DIR) return { cacheDir: env.CHARGEGATE_CACHE_DIR, cacheDirFrom: 'CHARGEGATE_CACHE_DIR', dbPath };
  return { cacheDir: null, cacheDirFrom: null, dbPath };
}

export interface UnpackSettings {
  /** The folder the operator chose, or null: then next to the database, else the temp dir. */
  cacheDir: string | null;
  /** Which setting chose it, for error messages. */
  cacheDirFrom: string | null;
  dbPath: string;
}

interface Spec {
  key: keyof Config;
  env: string;
  flag: string;
  parse: (raw: string) => unknown;
  def: unknown;
  /** Other names of the variable, read first (the lower-case proxy variables, as curl and undici do). */
  aliases?: string[];
  /** What the setting means, for `serve --help`. */
  doc: string;
  /** How the default reads when it is not a plain value. */
  defText?: string;
  /** The value may hold a password: an error message does not repeat it. */
  secret?: boolean;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function int(min: number, max: number) {
  return (raw: string): number => {
    if (!/^-?\d+$/.test(raw.trim())) throw new Error(`expected an integer from ${min} to ${max}`);
    const n = Number(raw.trim());
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

function nonEmpty(raw: string): string {
  if (raw.trim() === '') throw new Error('must not be empty');
  return raw;
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: string): T => {
    const v = raw.trim().toLowerCase() as T;
    if (!values.includes(v)) throw new Error(`expected one of ${values.join(', ')}`);
    return v;
  };
}

function httpUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error('expected an absolute http(s) URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('expected an absolute http(s) URL');
  return raw;
}

/** A forward proxy: http: or https: URL, nothing after the authority (undici's ProxyAgent takes no path). */
function proxyUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new Error('expected a proxy URL such as http://proxy.example:3128');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('expected an http: or https: proxy URL');
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '') throw new Error('expected a proxy URL without a path');
  return raw.trim();
}

/** A PostgreSQL connection URL; the password never appears in the message. */
export function postgresUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new Error('expected a URL such as postgres://user:password@host:5432/chargegate');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error('expected a postgres:// or postgresql:// URL');
  if (u.hostname === '' && !u.searchParams.has('host')) throw new Error('expected a host, as in postgres://user@host:5432/chargegate');
  return raw.trim();
}

function bool(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new Error('expected true or false');
}

/**
 * An IP address or a DNS name (RFC 1123 labels). Checked here so a typo is one line naming
 * HOST, not the HTTP framework's option dump; a name that does not resolve is reported at
 * listen time (src/runtime/serve.ts).
 */
function hostName(raw: string): string {
  const v = raw.trim();
  if (isIP(v)) return v;
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
  const labels = v.replace(/\.$/, '').split('.');
  // All-numeric dotted text is an IPv4 address or nothing (999.0.0.1 is not a name).
  if (v.length > 253 || !labels.every((l) => label.test(l)) || labels.every((l) => /^\d+$/.test(l))) {
    throw new Error('expected an IP address (0.0.0.0, ::, 127.0.0.1) or a host name');
  }
  return v;
}

function hostList(raw: string): string[] {
  const items = raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (items.length === 0) throw new Error('expected a comma-separated list of host names, *.wildcards, IPs or CIDRs');
  compilePolicy(items); // throws naming the bad entry
  return items;
}

const DAY_MS_MAX = 24 * 3600 * 1000;

const SPECS: Spec[] = [
  { key: 'port', env: 'PORT', flag: '--port', parse: int(0, 65535), def: 8080,
    doc: 'TCP port to listen on (0 = any free port, printed at start)' },
  { key: 'host', env: 'HOST', flag: '--host', parse: hostName, def: '0.0.0.0',
    doc: 'address to listen on (0.0.0.0 = every IPv4 interface, :: = every interface)' },
  { key: 'dbPath', env: 'DB_PATH', flag: '--db', parse: nonEmpty, def: DEFAULT_DB_PATH,
    doc: 'the SQLite file' },
  { key: 'databaseUrl', env: 'DATABASE_URL', flag: '--database-url', parse: postgresUrl, def: null,
    doc: 'PostgreSQL for several instances on one database (postgres://user:password@host:5432/db)', defText: 'unset: the SQLite file',
    secret: true },
  { key: 'authorizationTimeoutMs', env: 'AUTHORIZATION_TIMEOUT_MS', flag: '--authorization-timeout-ms', parse: int(1, 600_000), def: 30_000,
    doc: 'time for one decision; past it the decision is `unknown`' },
  { key: 'callbackTimeoutMs', env: 'CALLBACK_TIMEOUT_MS', flag: '--callback-timeout-ms', parse: int(1, 600_000), def: 10_000,
    doc: 'time for one callback POST; past it the attempt is retried' },
  { key: 'logLevel', env: 'LOG_LEVEL', flag: '--log-level', parse: oneOf(LOG_LEVELS), def: 'info',
    doc: 'fatal, error, warn, info, debug, trace or silent' },
  { key: 'queueMaxSize', env: 'QUEUE_MAX_SIZE', flag: '--queue-max-size', parse: int(1, 100_000_000), def: 10_000,
    doc: 'requests not yet decided and delivered; past it POST answers 503' },
  { key: 'workers', env: 'WORKERS', flag: '--workers', parse: int(1, 256), def: null,
    doc: 'worker threads for decisions and deliveries', defText: 'number of CPUs' },
  { key: 'callbackMaxAttempts', env: 'CALLBACK_MAX_ATTEMPTS', flag: '--callback-max-attempts', parse: int(1, 1000), def: 10,
    doc: 'callback attempts before a request is failed (dead-lettered)' },
  { key: 'callbackRetryBaseMs', env: 'CALLBACK_RETRY_BASE_MS', flag: '--callback-retry-base-ms', parse: int(1, DAY_MS_MAX), def: 1000,
    doc: "first retry's backoff ceiling; doubles each attempt (full jitter)" },
  { key: 'callbackRetryMaxMs', env: 'CALLBACK_RETRY_MAX_MS', flag: '--callback-retry-max-ms', parse: int(1, 7 * DAY_MS_MAX), def: 3_600_000,
    doc: 'cap on one backoff' },
  { key: 'callbackSigningSecret', env: 'CALLBACK_SIGNING_SECRET', flag: '--callback-signing-secret', parse: nonEmpty, def: null,
    doc: 'Standard Webhooks signing secret (whsec_… base64 or raw)', defText: 'unset: no signature' },
  { key: 'callbackAllowedHosts', env: 'CALLBACK_ALLOWED_HOSTS', flag: '--callback-allowed-hosts', parse: hostList, def: null,
    doc: 'comma-separated hosts, *.wildcards, IPs or CIDRs callbacks may go to', defText: 'any host but link-local/metadata' },
  { key: 'authorizerUrl', env: 'AUTHORIZER_URL', flag: '--authorizer-url', parse: httpUrl, def: null,
    doc: 'upstream authorizer asked before the local ACL', defText: 'unset: local ACL only' },
  { key: 'authorizerProtocol', env: 'AUTHORIZER_PROTOCOL', flag: '--authorizer-protocol', parse: oneOf(['json', 'ocpi']), def: 'json',
    doc: 'json or ocpi' },
  { key: 'authorizerToken', env: 'AUTHORIZER_TOKEN', flag: '--authorizer-token', parse: nonEmpty, def: null,
    doc: 'credentials for the upstream authorizer', defText: 'unset' },
  { key: 'authorizerMaxConcurrency', env: 'AUTHORIZER_MAX_CONCURRENCY', flag: '--authorizer-max-concurrency', parse: int(1, 10_000), def: 32,
    doc: 'upstream authorizer calls in flight at once' },
  { key: 'authorizerBreakerFailures', env: 'AUTHORIZER_BREAKER_FAILURES', flag: '--authorizer-breaker-failures', parse: int(1, 10_000), def: 5,
    doc: 'consecutive upstream failures that open the circuit breaker' },
  { key: 'authorizerBreakerOpenMs', env: 'AUTHORIZER_BREAKER_OPEN_MS', flag: '--authorizer-breaker-open-ms', parse: int(1, DAY_MS_MAX), def: 30_000,
    doc: 'how long the breaker stays open before one probe' },
  { key: 'authorizerCacheTtlS', env: 'AUTHORIZER_CACHE_TTL_S', flag: '--authorizer-cache-ttl-s', parse: int(0, 30 * 86_400), def: 300,
    doc: 'freshness of a cached upstream `allowed` (0 = no caching)' },
  { key: 'authorizerCacheNegativeTtlS', env: 'AUTHORIZER_CACHE_NEGATIVE_TTL_S', flag: '--authorizer-cache-negative-ttl-s', parse: int(0, 30 * 86_400), def: 60,
    doc: 'freshness of a cached upstream `not_allowed`' },
  { key: 'authorizerCacheMaxEntries', env: 'AUTHORIZER_CACHE_MAX_ENTRIES', flag: '--authorizer-cache-max-entries', parse: int(1, 10_000_000), def: 10_000,
    doc: 'bound of the upstream answer cache' },
  { key: 'offlineCacheMaxAgeS', env: 'OFFLINE_CACHE_MAX_AGE_S', flag: '--offline-cache-max-age-s', parse: int(0, 365 * 86_400), def: 86_400,
    doc: 'how old a cached `allowed` may be and still decide while the upstream is down' },
  { key: 'offlineAllowUnknown', env: 'OFFLINE_ALLOW_UNKNOWN', flag: '--offline-allow-unknown', parse: bool, def: false,
    doc: 'while the upstream cannot answer, allow tokens nobody knows' },
  { key: 'retentionDays', env: 'RETENTION_DAYS', flag: '--retention-days', parse: int(1, 36_500), def: 30,
    doc: 'finished requests are pruned after this many days' },
  { key: 'cacheDir', env: 'CHARGEGATE_CACHE_DIR', flag: '--cache-dir', parse: nonEmpty, def: null,
    doc: 'where the executable unpacks its embedded files', defText: 'next to the database, else the temp dir' },
  { key: 'shutdownTimeoutMs', env: 'SHUTDOWN_TIMEOUT_MS', flag: '--shutdown-timeout-ms', parse: int(0, 600_000), def: 10_000,
    doc: 'grace for in-flight work on SIGTERM before leases are released' },
  { key: 'workerConcurrency', env: 'WORKER_CONCURRENCY', flag: '--worker-concurrency', parse: int(1, 4096), def: 512,
    doc: 'callback POSTs one worker thread has in flight' },
  { key: 'callbackMaxInFlightPerOrigin', env: 'CALLBACK_MAX_IN_FLIGHT_PER_ORIGIN', flag: '--callback-max-in-flight-per-origin', parse: int(1, 100_000), def: 128,
    doc: 'callback POSTs in flight to one origin at once' },
  { key: 'apiKeysRequired', env: 'API_KEYS_REQUIRED', flag: '--api-keys-required', parse: bool, def: false,
    doc: 'ask every caller for an API key, even before one exists' },
  { key: 'queueMaxPerClient', env: 'QUEUE_MAX_PER_CLIENT', flag: '--queue-max-per-client', parse: int(1, 100_000_000), def: null,
    doc: 'open requests one API client may have', defText: 'half of QUEUE_MAX_SIZE' },
  { key: 'tlsCertFile', env: 'TLS_CERT_FILE', flag: '--tls-cert-file', parse: nonEmpty, def: null,
    doc: 'PEM certificate chain: the listener speaks HTTPS (re-read on SIGHUP)', defText: 'unset: plain HTTP' },
  { key: 'tlsKeyFile', env: 'TLS_KEY_FILE', flag: '--tls-key-file', parse: nonEmpty, def: null,
    doc: 'PEM private key of TLS_CERT_FILE', defText: 'unset' },
  { key: 'maxConnections', env: 'MAX_CONNECTIONS', flag: '--max-connections', parse: int(1, 1_000_000), def: 1024,
    doc: 'connections held at once; past it new ones are closed' },
  { key: 'metricsToken', env: 'METRICS_TOKEN', flag: '--metrics-token', parse: nonEmpty, def: null,
    doc: 'bearer token GET /metrics asks for', defText: 'unset: /metrics is open' },
  { key: 'httpProxy', env: 'HTTP_PROXY', flag: '--http-proxy', parse: proxyUrl, def: null, aliases: ['http_proxy'],
    doc: 'forward proxy for http: callbacks and upstream calls', defText: 'unset: direct' },
  { key: 'httpsProxy', env: 'HTTPS_PROXY', flag: '--https-proxy', parse: proxyUrl, def: null, aliases: ['https_proxy'],
    doc: 'forward proxy for https: targets (CONNECT)', defText: 'unset: direct' },
  { key: 'noProxy', env: 'NO_PROXY', flag: '--proxy-bypass', parse: (raw) => raw.trim(), def: null, aliases: ['no_proxy'],
    doc: 'hosts reached without the proxy', defText: 'unset' },
];

/** What the worker threads need of the proxy settings; null when no proxy is set (direct connections). */
export function proxySettings(config: Readonly<Config>): ProxySettings | null {
  if (config.httpProxy === null && config.httpsProxy === null) return null;
  return { httpProxy: config.httpProxy, httpsProxy: config.httpsProxy, noProxy: config.noProxy };
}

/**
 * Environment variable names and their flags, for `--help` and the README. A boolean is a
 * switch on the command line (`--x` / `--no-x`) and true/false in the environment.
 */
export const CONFIG_VARIABLES = SPECS.map(({ env, flag, def, doc, defText, parse }) => ({
  env,
  flag,
  doc,
  boolean: parse === bool,
  defText: defText ?? (def === null ? 'unset' : String(def)),
}));

/**
 * Builds the frozen configuration. `flags` holds values given on the command line, keyed
 * by environment variable name; an invalid value names the flag or variable it came from.
 */
export function loadConfig(env: Source, flags: Source = {}): Readonly<Config> {
  const out: Record<string, unknown> = {};
  for (const spec of SPECS) {
    const fromFlag = flags[spec.env];
    const alias = spec.aliases?.find((a) => env[a] !== undefined && env[a] !== '');
    const raw = fromFlag ?? (alias !== undefined ? env[alias] : env[spec.env]);
    if (raw === undefined || (fromFlag === undefined && raw === '')) {
      out[spec.key] = spec.def;
      continue;
    }
    try {
      out[spec.key] = spec.parse(raw);
    } catch (err) {
      const name = fromFlag !== undefined ? spec.flag : (alias ?? spec.env);
      const shown = spec.secret ? '' : `=${JSON.stringify(raw)}`;
      throw new ChargegateError('CG_ERR_CONFIG', `invalid ${name}${shown}: ${(err as Error).message}`);
    }
  }
  if (out.workers === null) out.workers = availableParallelism();
  if ((out.callbackRetryBaseMs as number) > (out.callbackRetryMaxMs as number)) {
    throw new ChargegateError('CG_ERR_CONFIG', 'invalid CALLBACK_RETRY_BASE_MS: must not exceed CALLBACK_RETRY_MAX_MS');
  }
  if ((out.tlsCertFile === null) !== (out.tlsKeyFile === null)) {
    const missing = out.tlsCertFile === null ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE';
    throw new ChargegateError('CG_ERR_CONFIG', `invalid ${missing}: TLS_CERT_FILE and TLS_KEY_FILE go together`);
  }
  // OCPI requests without the credentials token are refused by every eMSP (HTTP 401).
  if (out.authorizerUrl !== null && out.authorizerProtocol === 'ocpi' && out.authorizerToken === null) {
    throw new ChargegateError('CG_ERR_CONFIG', 'invalid AUTHORIZER_TOKEN: AUTHORIZER_PROTOCOL=ocpi needs the OCPI credentials token');
  }
  return Object.freeze(out) as unknown as Readonly<Config>;
}
