// Fills the peer's queue with n jobs for the drain phase, as the server's route would
// have added them, in chunks of 1,000 (addBulk), then exits.
//
//   REDIS_PORT=6380 node bench/peer/fill.mjs <n> <callback_url>
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';

const [n, callbackUrl] = [Number(process.argv[2]), process.argv[3]];
const queue = new Queue('authorize', { connection: { host: '127.0.0.1', port: Number(process.env.REDIS_PORT ?? 6379) } });
const opts = { attempts: 8, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true, removeOnFail: 10_000 };
for (let done = 0; done < n; ) {
  const jobs = [];
  for (let i = 0; i < 1000 && done < n; i++, done++) {
    const id = randomUUID();
    const data = { id, station_id: '123e4567-e89b-12d3-a456-426614174000', driver_token: 'ABCD-efgh1234567890_~valid.token', callback_url: callbackUrl };
    jobs.push({ name: 'decide', data, opts: { ...opts, jobId: id } });
  }
  await queue.addBulk(jobs);
}
await queue.close();
