// Repairs a known defect of the `postgres` client 3.4.9 (the newest release) at install
// time, until upstream ships the fix (porsager/postgres issues #1154, #1208; PRs #1168,
// #1209 are open). A write scheduled with setImmediate can run after the connection
// closed and nulled its socket: `socket.write` then throws from the timer, uncatchable,
// and the process dies. It happens whenever the database server goes away under load
// (test/faults/pgrestart.test.ts found it: `pg_ctl stop -m fast` killed the service).
// The repair: a write with no socket fails the connection's queries (CONNECTION_CLOSED,
// which the caller handles: 503, retries), and closing drops the buffered bytes and the
// timer handle so a reconnected socket never gets the old connection's half messages.
// Idempotent; refuses loudly when the text it repairs is not there (another version).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'postgres');
const MARK = '/* chargegate: nextWrite guard */';
const BEFORE = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const AFTER = `  function nextWrite(fn) {
    ${MARK}
    if (socket === null) {
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options, socket))
      return false
    }
    const x = socket.write(chunk, fn)`;
// closed() and terminate() cancel the timer without forgetting it: write() would never
// schedule again, and the stale chunk would go out on the next socket.
const CLEAR = '    clearImmediate(nextWriteTimer)\n';
const CLEAR_FIXED = '    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n';

if (!existsSync(root)) process.exit(0);
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
for (const dir of ['src', 'cjs/src', 'cf/src']) {
  const file = join(root, dir, 'connection.js');
  if (!existsSync(file)) continue;
  let text = readFileSync(file, 'utf8');
  if (text.includes(MARK)) continue;
  const clears = text.split(CLEAR).length - 1;
  if (!text.includes(BEFORE) || clears !== 2) {
    console.error(`scripts/patch-postgres.mjs: postgres ${version} ${dir}/connection.js is not the text this repairs;`
      + ' check whether the new version fixed nextWrite (porsager/postgres#1208) and update or remove this script');
    process.exit(1);
  }
  text = text.replace(BEFORE, AFTER).replaceAll(CLEAR, CLEAR_FIXED);
  writeFileSync(file, text);
}
