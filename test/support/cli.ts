import { runCli } from '../../src/cli/main.ts';

/** Runs the CLI in this process with captured output; version 9.9.9. */
export async function cli(args: string[], env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  process.exitCode = undefined;
  const code = await runCli(args, { env, out: (s) => void (out += s), err: (s) => void (err += s) }, '9.9.9');
  // Commands signal "failed" through process.exitCode; it must not leak into the runner's.
  process.exitCode = undefined;
  return { code, out, err };
}
