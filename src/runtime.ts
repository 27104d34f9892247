// Where the code that is not plain JavaScript lives: the worker task file and the
// better-sqlite3 addon. In a checkout they are found next to the sources; the single
// executable (see build.mjs) sets them to the files it extracted.

export interface RuntimePaths {
  /** piscina task file (URL or path). */
  workerFile: string;
  /** better-sqlite3 addon; undefined = resolve from node_modules. */
  nativeBinding: string | undefined;
}

let paths: RuntimePaths = {
  workerFile: new URL('../workers/task.ts', import.meta.url).href,
  nativeBinding: undefined,
};

export function runtimePaths(): RuntimePaths {
  return paths;
}

export function setRuntimePaths(p: RuntimePaths): void {
  paths = p;
}
