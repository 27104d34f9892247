import { join } from 'node:path';
import { startReceiver } from '../../support/receiver.ts';
import { exitWithin, processDir, startService, type ServiceProcess } from '../../support/process.ts';
import { waitFor } from '../../support/tmp.ts';
import { callbackCounts, freePort, load, readDb, recordedAttempts, seeded, statesOf, type LoadResult } from './load.ts';

// Crash durability under load (issue item 1): a stream of requests while the service is
// SIGKILLed at random moments and restarted at once on the same file and port, as a
// supervisor would. Shared by test/faults/crash.test.ts (CI size) and soak/crash.ts.

type TestContext = { after: (fn: () => unknown) => void; diagnostic?: (msg: string) => void };

export interface CrashOptions {
  /** Cap on requests answered; the load runs from the first start until `tailMs` after the last restart. */
  total: number;
  /** How long the load goes on after the last restart. */
  tailMs: number;
  /** SIGKILLs, each followed by an immediate restart. */
  kills: number;
  concurrency: number;
  seed: number;
  /** Uptime before each kill, drawn uniformly from [min, max] ms after "listening". */
  uptimeMs: [number, number];
  /** Bound on the whole run (load + recovery). */
  deadlineMs: number;
}

export interface CrashReport {
  seed: number;
  load: LoadResult;
  /** 202s whose request never reached the receiver. Must be 0. */
  lost: number;
  /** Callbacks beyond the first, over all accepted requests. */
  duplicates: number;
  /** Requests called back more than once. */
  duplicatedRequests: number;
  /** Claimed (in-flight) rows left by each kill, as the file shows them after the kill. */
  inflightAtKills: number[];
  /** Requests whose callbacks exceed their recorded attempts plus the kills they were in flight for. */
  unexplained: string[];
  /** Rows stored whose 202 never reached the client (the kill cut the answer): delivered too. */
  committedWithout202: number;
  /** Rows stored in all, and rows not delivered at the end. */
  stored: number;
  open: number;
  /** Per restart: ms from its "listening" until every request the kill caught in flight was called back again. */
  resumeMs: number[];
  /** ms from the end of the load until every accepted request was called back. */
  drainMs: number;
  /** Exit of the final graceful stop. */
  finalExit: { code: number | null; signal: NodeJS.Signals | null };
  /** Every stdout line of every run of the service (for the token check). */
  logLines: string[];
}

const ENV = {
  AUTHORIZATION_TIMEOUT_MS: '1000',
  CALLBACK_TIMEOUT_MS: '1000',
  CALLBACK_MAX_ATTEMPTS: '50',
  CALLBACK_RETRY_BASE_MS: '10',
  CALLBACK_RETRY_MAX_MS: '200',
  QUEUE_MAX_SIZE: '1000000',
};

export async function crashRun(t: TestContext, opts: CrashOptions): Promise<CrashReport> {
  const random = seeded(opts.seed);
  const deadline = Date.now() + opts.deadlineMs;
  const dbPath = join(processDir(t), 'cg.db');
  // A receiver that takes a few ms, so deliveries are in flight when the kills land.
  const receiver = await startReceiver((_c, _n, res) => {
    setTimeout(() => res.writeHead(200).end(), Math.floor(Math.random() * 10));
  });
  t.after(() => receiver.close());
  const port = await freePort();
  const env = { ...ENV, PORT: String(port) };
  const runs: ServiceProcess[] = [];
  let svc = await startService(t, { dbPath, env, startTimeoutMs: 30_000 });
  runs.push(svc);

  let stopLoad = false;
  const loading = load({
    base: `http://127.0.0.1:${port}`,
    callbackUrl: receiver.url('/crash'),
    concurrency: opts.concurrency,
    total: opts.total,
    until: deadline,
    stop: () => stopLoad,
  });
  const resumes: Array<Promise<number>> = [];

  const inflightAtKills: number[] = [];
  const inflightKills = new Map<string, number>();
  for (let k = 0; k < opts.kills; k++) {
    const [min, max] = opts.uptimeMs;
    const uptime = min + Math.floor(random() * (max - min));
    await new Promise((r) => setTimeout(r, uptime));
    svc.kill('SIGKILL');
    await exitWithin(svc, 10_000);
    // What the dead process had claimed: the only requests a restart may call back again.
    const db = readDb(dbPath);
    const claimed = db
      .prepare("SELECT id FROM charging_requests WHERE locked_at IS NOT NULL AND state IN ('authorizing','delivering')")
      .pluck()
      .all() as string[];
    db.close();
    inflightAtKills.push(claimed.length);
    for (const id of claimed) inflightKills.set(id, (inflightKills.get(id) ?? 0) + 1);
    svc = await startService(t, { dbPath, env, startTimeoutMs: 30_000 });
    runs.push(svc);
    const listeningAt = Date.now();
    const owed = new Set(claimed);
    resumes.push(
      waitFor(() => [...owed].every((id) => receiver.calls.some((c) => c.at >= listeningAt && c.headers['webhook-id'] === id)), {
        timeoutMs: Math.max(10_000, deadline - Date.now()),
        intervalMs: 25,
        what: `the work in flight at kill ${k + 1} called back again`,
      }).then(() => Date.now() - listeningAt),
    );
  }
  await new Promise((r) => setTimeout(r, opts.tailMs));
  stopLoad = true;
  const result = await loading;
  const loadEnd = Date.now();

  const acceptedSet = new Set(result.accepted);
  const missing = () => {
    const seen = callbackCounts(receiver.calls);
    return result.accepted.filter((id) => !seen.has(id)).length;
  };
  const openRows = () => {
    const db = readDb(dbPath);
    try {
      return db.prepare("SELECT COUNT(*) FROM charging_requests WHERE state <> 'delivered'").pluck().get() as number;
    } finally {
      db.close();
    }
  };
  await waitFor(() => missing() === 0 && openRows() === 0, {
    timeoutMs: Math.max(10_000, deadline - Date.now()),
    intervalMs: 200,
    what: 'every accepted request called back and every stored row delivered',
  }).catch((err: Error) => {
    throw new Error(`${err.message}: ${missing()} of ${result.accepted.length} accepted not called back; db ${JSON.stringify(statesOf(dbPath))}`);
  });
  const drainMs = Math.max(0, Math.max(...receiver.calls.map((c) => c.at)) - loadEnd);
  const resumeMs = await Promise.all(resumes);

  svc.kill('SIGTERM');
  const finalExit = await exitWithin(svc, 20_000);

  const seen = callbackCounts(receiver.calls);
  const recorded = recordedAttempts(dbPath);
  let duplicates = 0;
  let duplicatedRequests = 0;
  let lost = 0;
  const unexplained: string[] = [];
  for (const id of result.accepted) {
    const n = seen.get(id) ?? 0;
    if (n === 0) lost++;
    if (n > 1) {
      duplicates += n - 1;
      duplicatedRequests++;
    }
    const bound = (recorded.get(id) ?? 0) + (inflightKills.get(id) ?? 0);
    if (n > bound) unexplained.push(`${id}: ${n} callbacks, ${recorded.get(id) ?? 0} recorded attempts, in flight at ${inflightKills.get(id) ?? 0} kills`);
  }
  const db = readDb(dbPath);
  const stored = db.prepare('SELECT COUNT(*) FROM charging_requests').pluck().get() as number;
  const open = db.prepare("SELECT COUNT(*) FROM charging_requests WHERE state <> 'delivered'").pluck().get() as number;
  db.close();
  const committedWithout202 = [...seen.keys()].filter((id) => !acceptedSet.has(id)).length;

  return {
    seed: opts.seed,
    load: result,
    lost,
    duplicates,
    duplicatedRequests,
    inflightAtKills,
    unexplained,
    committedWithout202,
    stored,
    open,
    resumeMs,
    drainMs,
    finalExit,
    logLines: runs.flatMap((r) => r.raw),
  };
}

export function summary(r: CrashReport): string {
  const bound = r.inflightAtKills.reduce((a, b) => a + b, 0);
  return (
    `crash: seed=${r.seed} kills=${r.inflightAtKills.length} sent=${r.load.sent} accepted=${r.load.accepted.length} lost=${r.lost}` +
    ` duplicates=${r.duplicates} (requests=${r.duplicatedRequests}, bound=${bound}, in_flight_at_kills=${JSON.stringify(r.inflightAtKills)})` +
    ` committed_without_202=${r.committedWithout202} stored=${r.stored} transport_errors=${r.load.transportErrors}` +
    ` statuses=${JSON.stringify([...r.load.statuses])} resume_ms=${JSON.stringify(r.resumeMs)} drain_ms=${r.drainMs}`
  );
}
