import type { Sql } from 'postgres';
import type { CommitterHooks } from '../committer.ts';

// Whether the PostgreSQL server answers, for /health/ready: a load balancer should stop
// sending accepts to an instance whose database is gone (they would all get 503), and send
// them again once it is back. A failed commit marks it unreachable at once; a successful
// commit, or the probe (every PROBE_MS, so an idle instance notices the return too), marks
// it reachable again. Only errors count: a slow answer under load is not a fault.

const PROBE_MS = 1000;

export interface Reach {
  /** Why the database is unreachable, or null. */
  fault(): string | null;
  /** The group's hooks with this tracker's observations added. */
  hooks: CommitterHooks;
  stop(): void;
}

export function createReach(sql: Sql, hooks: CommitterHooks = {}): Reach {
  let fault: string | null = null;
  let probing = false;
  const timer = setInterval(() => {
    if (probing) return;
    probing = true;
    sql`SELECT 1`.then(() => {
      fault = null;
    }, (err: unknown) => {
      fault = `the database does not answer: ${(err as Error).message}`;
    }).finally(() => {
      probing = false;
    });
  }, PROBE_MS);
  timer.unref();
  return {
    fault: () => fault,
    hooks: {
      ...hooks,
      onCommit: (...args) => {
        fault = null;
        hooks.onCommit?.(...args);
      },
      onError: (err, ops) => {
        fault = `the database does not answer: ${(err as Error).message}`;
        hooks.onError?.(err, ops);
      },
    },
    stop: () => clearInterval(timer),
  };
}
