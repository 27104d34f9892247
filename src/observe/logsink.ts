import pino from 'pino';

// pino's asynchronous stdout destination (sonic-boom) measures the byte length of its
// whole pending buffer on every line it is given; under load, with three lines per
// request, that became the most expensive thing the main thread did. This sink hands it
// one chunk per event-loop turn instead: the lines of a turn are joined once.

export interface LineSink {
  write(line: string): boolean;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/**
 * Log bytes held while stdout cannot take them (a stalled pipe or journald). Past this the
 * newest lines are dropped and counted: a slow log reader must not grow memory unbounded.
 */
export const MAX_PENDING_LOG_BYTES = 8 * 1024 * 1024;

// Process-wide: there is one stdout. Read by /metrics.
let droppedLines = 0;

/** Log lines dropped because stdout could not keep up (chargegate_log_lines_dropped_total). */
export function droppedLogLines(): number {
  return droppedLines;
}

export function batchedStdout(fd = 1): LineSink {
  const dest = pino.destination({ dest: fd, sync: false, maxLength: MAX_PENDING_LOG_BYTES });
  dest.on('drop', (data: string) => {
    for (let i = data.indexOf('\n'); i !== -1; i = data.indexOf('\n', i + 1)) droppedLines++;
  });
  let lines: string[] = [];
  let scheduled = false;

  function drain(): void {
    scheduled = false;
    if (lines.length === 0) return;
    const chunk = lines.length === 1 ? lines[0]! : lines.join('');
    lines = [];
    dest.write(chunk);
  }

  return {
    write(line: string): boolean {
      lines.push(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(drain);
      }
      return true;
    },
    flush(cb?: (err?: Error) => void): void {
      drain();
      dest.flush(cb);
    },
    flushSync(): void {
      drain();
      try {
        dest.flushSync();
      } catch {
        // Nothing pending, or stdout is gone: nothing more can be done.
      }
    },
  };
}
