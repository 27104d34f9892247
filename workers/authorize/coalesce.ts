// Identical lookups in flight share one upstream call: a driver tapping a card three times,
// or a client retrying, costs the authority one request. Per thread (threads share no
// promises); the key is the token hash and station, never the token.

export function createCoalescer<T>() {
  const inflight = new Map<string, Promise<T>>();
  return {
    run(key: string, fn: () => Promise<T>): Promise<T> {
      const running = inflight.get(key);
      if (running) return running;
      const p = fn().finally(() => inflight.delete(key));
      inflight.set(key, p);
      return p;
    },
    get size(): number {
      return inflight.size;
    },
  };
}
