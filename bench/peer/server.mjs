// The peer contestant: what a Node team would build instead of chargegate. Hapi + joi
// validate and answer 202 once BullMQ has the job in Redis (run with `appendonly yes`,
// `appendfsync always`, so the 202 follows an fsync as chargegate's does); a BullMQ worker
// in the same process decides from an in-memory set of tokens and POSTs the callback with
// undici, retried by BullMQ with exponential backoff.
//
//   REDIS_PORT=6380 PORT=0 [PEER_WORKER=0] node bench/peer/server.mjs
//
// PEER_WORKER=0 serves without the worker (the drain phase fills the queue first).
import { randomUUID } from 'node:crypto';
import Hapi from '@hapi/hapi';
import { Queue, Worker } from 'bullmq';
import Joi from 'joi';
import { Agent, request } from 'undici';

const connection = { host: '127.0.0.1', port: Number(process.env.REDIS_PORT ?? 6379), maxRetriesPerRequest: null };
const ACL = new Set(['ABCD-efgh1234567890_~valid.token']);
const queue = new Queue('authorize', {
  connection,
  defaultJobOptions: { attempts: 8, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true, removeOnFail: 10_000 },
});

// The contract's body, checked as chargegate checks it (the URL policy's host checks aside).
const schema = Joi.object({
  station_id: Joi.string().required().pattern(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i),
  driver_token: Joi.string().required().pattern(/^[A-Za-z0-9._~-]{20,80}$/),
  callback_url: Joi.string().required().max(2048).uri({ scheme: ['http', 'https'] }),
  token_type: Joi.string().valid('AD_HOC_USER', 'APP_USER', 'OTHER', 'RFID').default('RFID'),
});

const server = Hapi.server({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
server.route({
  method: 'POST',
  path: '/api/v1/charging-session',
  options: {
    payload: { maxBytes: 16 * 1024, allow: ['application/json'] },
    validate: { payload: schema, failAction: (_r, h, err) => h.response({ status: 'invalid', message: err?.message }).code(400).takeover() },
  },
  handler: async (req, h) => {
    const id = randomUUID();
    await queue.add('decide', { id, ...req.payload }, { jobId: id });
    return h
      .response({ status: 'accepted', message: 'Request is being processed asynchronously. The result will be sent to the provided callback URL.', request_id: id })
      .code(202)
      .header('location', `/api/v1/charging-session/${id}`);
  },
});

const agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 });
let worker = null;
if (process.env.PEER_WORKER !== '0') {
  worker = new Worker(
    'authorize',
    async (job) => {
      const { id, station_id, driver_token, callback_url } = job.data;
      const status = ACL.has(driver_token) ? 'allowed' : 'not_allowed';
      const res = await request(callback_url, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) },
        body: JSON.stringify({ station_id, driver_token, status }),
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      await res.body.dump();
      if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`callback answered ${res.statusCode}`);
    },
    { connection, concurrency: 64 },
  );
}

await server.start();
process.stdout.write(`${JSON.stringify({ msg: 'listening', port: server.info.port })}\n`);
process.on('SIGTERM', async () => {
  await server.stop({ timeout: 2000 });
  await worker?.close();
  await queue.close();
  process.exit(0);
});
