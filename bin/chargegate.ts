#!/usr/bin/env node
import pkg from '../package.json' with { type: 'json' };
import { runCli } from '../src/cli/main.ts';
import { processIo } from '../src/runtime/stdio.ts';

const io = processIo(process.env);

// `serve` resolves once listening and the server keeps the process alive; one-shot
// commands end when their work is done. Either way the exit code is set, not forced.
runCli(process.argv.slice(2), io, pkg.version).then((code) => {
  process.exitCode = code;
});
