import { CANCELLED, clockMs, PENDING, type GateRef } from '../core/gate.ts';

// Runs worker tasks against absolute deadlines (src/core/gate.ts clock), the one deadline
// mechanism of the dispatcher:
// - startBy: a task not begun by then is cancelled and never runs (the gate says so);
// - finishBy: a task begun but silent by then is `lost` (a thread that stopped answering).
//   Its work may or may not have happened, so callers record nothing they cannot know.
// Workers enforce the real time limits themselves, measured from when they start.

export interface TaskRunner {
  run(task: unknown, opts: { name: string }): Promise<unknown>;
}

export type TaskOutcome<T> =
  | { kind: 'done'; value: T }
  | { kind: 'cancelled' }
  | { kind: 'lost' }
  | { kind: 'failed'; error: string };

export interface Deadlines {
  /** Absolute clockMs() instant by which the task must have started. */
  startBy: number;
  /** Absolute clockMs() instant by which a started task must have answered. */
  finishBy: number;
}

export function createDeadlineRunner(pool: TaskRunner, opts: { slots?: number; clock?: () => number } = {}) {
  const clock = opts.clock ?? clockMs;
  const size = opts.slots ?? 4096;
  const buf = new SharedArrayBuffer(size * 4);
  const gates = new Int32Array(buf);
  // Slots are reused only once their task settled: a worker must never find a recycled slot.
  const free: number[] = [];
  for (let i = size - 1; i >= 0; i--) free.push(i);
  let overflow = 0;

  function run<T>(name: string, task: { gate?: GateRef }, d: Deadlines): Promise<TaskOutcome<T>> {
    const slot = free.pop();
    if (slot === undefined) {
      // More tasks in flight than slots: the lanes bound tasks far below this, so this is a
      // leak of stuck threads. Run ungated rather than refuse work.
      overflow++;
    } else {
      Atomics.store(gates, slot, PENDING);
      task.gate = { buf, slot };
    }
    return new Promise<TaskOutcome<T>>((resolve) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (o: TaskOutcome<T>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      const onLost = () => settle({ kind: 'lost' });
      const onStartDue = () => {
        if (slot !== undefined && Atomics.compareExchange(gates, slot, PENDING, CANCELLED) === PENDING) {
          settle({ kind: 'cancelled' });
          return;
        }
        timer = setTimeout(onLost, Math.max(0, d.finishBy - clock()));
      };
      timer = setTimeout(onStartDue, Math.max(0, d.startBy - clock()));
      pool.run(task, { name }).then(
        (value) => {
          if (slot !== undefined) free.push(slot);
          // A worker that found its gate cancelled answers null.
          settle(value === null ? { kind: 'cancelled' } : { kind: 'done', value: value as T });
        },
        (err: unknown) => {
          if (slot !== undefined) free.push(slot);
          settle({ kind: 'failed', error: String(err) });
        },
      );
    });
  }

  return {
    run,
    /** Gate slots whose task has not settled (tests: every task settles). */
    get busy(): number {
      return size - free.length;
    },
    get overflow(): number {
      return overflow;
    },
  };
}

export type DeadlineRunner = ReturnType<typeof createDeadlineRunner>;
