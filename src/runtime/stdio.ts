import type { CliIo } from '../cli/main.ts';

/**
 * The process's own stdout/stderr as the CLI's io. A reader that stops early
 * (`chargegate requests list | head`) closes the pipe: that ends the command quietly with
 * its exit code, not with an unhandled EPIPE and a stack trace. (The service's logs go to
 * fd 1 through pino's own destination, not through process.stdout.)
 */
export function processIo(env: CliIo['env']): CliIo {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
  return {
    env,
    out: (s: string) => void process.stdout.write(s),
    err: (s: string) => void process.stderr.write(s),
  };
}
