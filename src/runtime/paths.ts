// Where the code that is not plain JavaScript lives: the worker task file and the
// better-sqlite3 addon. In a checkout they are found next to the sources; the single
// executable (src/runtime/sea.ts, built by build.mjs) points them at the files it unpacked.

export interface RuntimePaths {
  /** piscina task file (URL or path). */
  workerFile: string;
  /** better-sqlite3 addon; undefined = resolve from node_modules. */
  nativeBinding: string | undefined;
  /** piscina's own worker bootstrap; undefined = the one next to piscina's dist/ (the
   * executable's bundle reads this through a build-time rewrite, see build.mjs). */
  piscinaWorker?: string | undefined;
}

export type RuntimePathsSource = RuntimePaths | (() => RuntimePaths);

// A function, so that nothing is computed at load time: in the executable's CommonJS
// bundle import.meta.url does not exist, and unpacking waits for a command that needs it.
let source: RuntimePathsSource = () => ({
  workerFile: new URL('../../workers/task.ts', import.meta.url).href,
  nativeBinding: undefined,
});
let resolved: RuntimePaths | undefined;

/** The paths, found on first use; a failed lookup throws and is tried again next time. */
export function runtimePaths(): RuntimePaths {
  resolved ??= typeof source === 'function' ? source() : source;
  return resolved;
}

/** Sets the paths, or a function that finds them when a command first needs them. */
export function setRuntimePaths(p: RuntimePathsSource): void {
  source = p;
  resolved = undefined;
}
