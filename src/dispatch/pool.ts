import { Piscina } from 'piscina';

export interface PoolOptions {
  filename: string;
  threads: number;
  concurrency: number;
}

/**
 * A fixed-size pool: threads start with the service (no cold start on the first request)
 * and each runs several async tasks at once, since callback POSTs mostly wait on I/O.
 */
export function createPool(opts: PoolOptions): Piscina {
  return new Piscina({
    filename: opts.filename,
    minThreads: opts.threads,
    maxThreads: opts.threads,
    concurrentTasksPerWorker: opts.concurrency,
    idleTimeout: Number.POSITIVE_INFINITY,
    // piscina's default ('sync') parks an idle thread in Atomics.wait: its event loop stops,
    // so neither undici's keep-alive timers nor a receiver's FIN on an idle socket are seen,
    // and the next task's POST went out on a connection the receiver had closed (a false
    // UND_ERR_SOCKET after every idle gap longer than the receiver's keep-alive timeout).
    // 'async' waits with Atomics.waitAsync: same fast hand-off, the loop keeps running.
    atomics: 'async',
    // Sized by the dispatcher's lanes (laneSizes): it never has more tasks out than
    // threads x concurrency, so no task waits in piscina's queue behind another lane's.
    maxQueue: Number.POSITIVE_INFINITY,
  });
}
