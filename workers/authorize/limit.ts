// A bound on the upstream calls one thread makes at once. Waiters queue in order; one
// whose deadline passes leaves the queue (its decision goes to the offline rules).

export interface Limiter {
  /** Resolves with a release function, or null when the deadline passed first. */
  acquire(timeoutMs: number): Promise<(() => void) | null>;
  /** Changes the bound (tasks carry it; it only changes when the config does). */
  resize(max: number): void;
  readonly active: number;
  readonly waiting: number;
}

export function createLimiter(initial: number): Limiter {
  let max = Math.max(1, initial);
  let active = 0;
  const queue: Array<(release: (() => void) | null) => void> = [];

  function releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      active--;
      pump();
    };
  }

  function pump(): void {
    while (active < max && queue.length > 0) {
      const next = queue.shift()!;
      active++;
      next(releaser());
    }
  }

  return {
    acquire(timeoutMs: number): Promise<(() => void) | null> {
      if (active < max && queue.length === 0) {
        active++;
        return Promise.resolve(releaser());
      }
      if (timeoutMs <= 0) return Promise.resolve(null);
      return new Promise((resolve) => {
        const waiter = (release: (() => void) | null) => {
          clearTimeout(timer);
          resolve(release);
        };
        const timer = setTimeout(() => {
          const i = queue.indexOf(waiter);
          if (i >= 0) queue.splice(i, 1);
          resolve(null);
        }, timeoutMs);
        queue.push(waiter);
      });
    },
    resize(n: number): void {
      max = Math.max(1, n);
      pump();
    },
    get active() {
      return active;
    },
    get waiting() {
      return queue.length;
    },
  };
}
