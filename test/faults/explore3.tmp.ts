import { overloadRun, summary } from './support/overload.ts';
const cleanups: Array<() => unknown> = [];
const r = await overloadRun({ after: (fn) => void cleanups.push(fn) }, { queueMax: 400, receiverDelayMs: 100, floodConcurrency: 64, floodMs: Number(process.argv[2] ?? 30000), calmRequests: 50, calmConcurrency: 4, deadlineMs: 200_000 });
console.log(summary(r, 400));
console.log(JSON.stringify(r.rssTimeline));
for (const fn of cleanups.reverse()) await fn();
