import { ChargegateError } from '../core/errors.ts';

/** A bad argument: the CLI prints the one-line message and exits 2. */
export function usageError(message: string): ChargegateError {
  return new ChargegateError('CG_ERR_USAGE', message);
}

/** Left-aligned columns for humans; --json is for scripts. */
export function table(rows: Array<Record<string, unknown>>, columns: string[]): string {
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}

/** commander accumulator for repeatable options (`--station a --station b`). */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];
