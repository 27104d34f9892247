import { Piscina } from 'piscina';

export interface PoolOptions {
  filename: string;
  /** The most threads (WORKERS); none run while there is no work. */
  threads: number;
  concurrency: number;
  /** How long a thread with nothing to do lives on (default POOL_IDLE_MS). */
  idleMs?: number;
}

/**
 * A thread costs ~20 MiB and ~30 ms to start: it ends after this long without work, and a
 * burst of work seldom pays the start twice. (docs/performance.md, footprint.)
 */
export const POOL_IDLE_MS = 30_000;

/**
 * Each thread's V8 heap bounds. Unbounded, a worker's heap grew to 172–191 MiB in the 100k
 * drain for ~27 MiB live (V8 grows the heap with the allocation rate); bounded, ~40 MiB
 * (docs/performance.md, RSS peak). 128 MiB of old generation is ~5x the live set measured;
 * a thread that still runs out ends with ERR_WORKER_OUT_OF_MEMORY and its task fails as
 * when any thread dies (a delivery's rows go back to the table without an attempt, a
 * decision batch is unknown/worker_error), and piscina starts another thread.
 */
export const WORKER_HEAP = { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 12 } as const;

type Balancer = NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer'] & {};
type Worker = Parameters<Balancer>[1][number];

/**
 * Spreads tasks over threads: an idle thread first; when every running thread is busy and
 * the pool may grow, none, so piscina starts another and hands it the task (it waits for the
 * start, ~30 ms, never for another task); at the most threads, the least busy one with room.
 * piscina's own balancer would grow only once a thread held `concurrency` tasks, leaving
 * decisions on one core while another was free.
 */
function spreading(maxThreads: number, concurrency: number): Balancer {
  return (_task, workers) => {
    let best: Worker | null = null;
    for (const w of workers) {
      if (w.currentUsage === 0) return w;
      if (w.currentUsage < concurrency && (best === null || w.currentUsage < best.currentUsage)) best = w;
    }
    return workers.length < maxThreads ? null : best;
  };
}

/**
 * A pool that grows with the work and shrinks back when idle: no thread at start (the
 * service listens sooner and an idle gateway keeps ~20 MiB per thread), up to `threads`
 * under load, each running several async tasks at once since callback POSTs mostly wait
 * on I/O. The app starts one thread right after listening to prove threads can start
 * (src/app.ts). Sized by the dispatcher's lanes (laneSizes): it never has more tasks out
 * than threads x concurrency, so no task waits in piscina's queue behind another lane's
 * task; one may wait only for a thread being started for it.
 */
export function createPool(opts: PoolOptions): Piscina {
  return new Piscina({
    filename: opts.filename,
    minThreads: 0,
    maxThreads: opts.threads,
    concurrentTasksPerWorker: opts.concurrency,
    idleTimeout: opts.idleMs ?? POOL_IDLE_MS,
    loadBalancer: spreading(opts.threads, opts.concurrency),
    // piscina's default ('sync') parks an idle thread in Atomics.wait: its event loop stops,
    // so neither undici's keep-alive timers nor a receiver's FIN on an idle socket are seen,
    // and the next task's POST went out on a connection the receiver had closed (a false
    // UND_ERR_SOCKET after every idle gap longer than the receiver's keep-alive timeout).
    // 'async' waits with Atomics.waitAsync: same fast hand-off, the loop keeps running.
    atomics: 'async',
    maxQueue: Number.POSITIVE_INFINITY,
    resourceLimits: { ...WORKER_HEAP },
  });
}
