import { Agent, EnvHttpProxyAgent, Pool, type Dispatcher } from 'undici';
import { KEEP_ALIVE } from '../src/core/keepalive.ts';
import type { ProxySettings } from '../src/core/types.ts';

// The undici dispatcher of one outbound client (callbacks, the upstream authorizer), with
// or without forward proxies. Proxying is undici's own: EnvHttpProxyAgent picks, per
// target, the NO_PROXY bypass (a plain Agent), the HTTP_PROXY or the HTTPS_PROXY.
// - https: targets are tunnelled (CONNECT host:443), so TLS stays end to end.
// - http: targets are sent to the proxy in absolute form (`POST http://host/path`), which
//   is what forward proxies expect for plain HTTP (many allow CONNECT only to port 443).
// The proxy settings come from the task (src/config.ts is the only reader of the
// environment): the values are passed explicitly, never left for undici to read.

export interface OutboundOptions {
  /** Connections per origin (and to the proxy). */
  connections?: number;
  /** Resolver for direct connections (workers/deliver.ts checks every resolved address). */
  lookup?: unknown;
}

/** Every pool keeps the service's keep-alive rules, the proxy's pool included. */
const pool = (origin: string | URL, opts: object) => new Pool(origin, { ...KEEP_ALIVE, ...opts });

export function createOutbound(proxy: ProxySettings | null | undefined, opts: OutboundOptions = {}): Dispatcher {
  const base = {
    ...KEEP_ALIVE,
    ...(opts.connections !== undefined ? { connections: opts.connections } : {}),
    ...(opts.lookup !== undefined ? { connect: { lookup: opts.lookup as never } } : {}),
  };
  if (!proxy || (proxy.httpProxy === null && proxy.httpsProxy === null)) return new Agent(base);
  return new EnvHttpProxyAgent({
    ...base,
    // '' rather than undefined: undici would otherwise read the environment itself.
    httpProxy: proxy.httpProxy ?? '',
    httpsProxy: proxy.httpsProxy ?? '',
    noProxy: proxy.noProxy ?? '',
    proxyTunnel: false,
    factory: pool,
  } as EnvHttpProxyAgent.Options);
}

/** One dispatcher per distinct proxy setting, reused across tasks (a process has one). */
export function outboundCache(opts: OutboundOptions = {}) {
  let key: string | null = null;
  let current: Dispatcher | null = null;
  return (proxy: ProxySettings | null | undefined): Dispatcher => {
    const k = JSON.stringify(proxy ?? null);
    if (current === null || k !== key) {
      void current?.close().catch(() => undefined);
      current = createOutbound(proxy, opts);
      key = k;
    }
    return current;
  };
}
