// Connection reuse for outbound HTTP (callbacks, the upstream authorizer): one undici
// Agent per worker thread keeps sockets to each server alive across tasks.
//
// A POST written to a socket the server has already closed fails at once (UND_ERR_SOCKET,
// "other side closed") and costs a retry, so an idle socket must be retired before the
// server retires it:
// - With a `Keep-Alive: timeout=N` answer (Node's http server sends timeout=5, Apache
//   too), undici keeps the socket idle for N s minus keepAliveTimeoutThreshold: 3 s for
//   Node's default 5 s.
// - Without one, keepAliveTimeout: 4 s, below the 5 s that Node, Apache and many proxies
//   close idle connections after (it was 10 s, longer than all of them).
// - keepAliveMaxTimeout caps what a server may ask for.
// Both are timers in the worker thread, and they and the server's FIN are seen only while
// the thread's event loop runs: src/dispatch/pool.ts keeps idle threads' loops running.
//
// A POST that fails on a reused socket is not retried inside the attempt: without an
// answer nothing proves the receiver did not act on it, and SPEC §2 allows one POST per
// recorded attempt. It is recorded and retried with backoff, as any network error.

/** undici Agent options for every outbound HTTP client of the service. */
export const KEEP_ALIVE = Object.freeze({
  keepAliveTimeout: 4_000,
  keepAliveTimeoutThreshold: 2_000,
  keepAliveMaxTimeout: 60_000,
});
