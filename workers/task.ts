// The piscina task file: the pool calls these by name. Only leaf modules are imported
// here, never the HTTP layer or the queue (STYLE: one-way dependencies).
export { authorize } from './authorize.ts';
export { checkpoint } from './checkpoint.ts';
export { decide } from './decide.ts';
export { deliver } from './deliver.ts';

/** The pool's start check (src/app.ts): answering proves a thread starts and loads this file. */
export function ping(): true {
  return true;
}
