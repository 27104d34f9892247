// The accept baseline: Hapi + joi validating the same body with the same schema and
// answering 202 at once, storing nothing. chargegate's accept path is measured against it.
import { randomUUID } from 'node:crypto';
import Hapi from '@hapi/hapi';
import { sessionSchema } from '../src/http/schema.ts';

const server = Hapi.server({ host: '127.0.0.1', port: 0 });
server.route({
  method: 'POST',
  path: '/api/v1/charging-session',
  options: {
    payload: { maxBytes: 16 * 1024, allow: ['application/json'], defaultContentType: 'application/octet-stream' },
    validate: {
      payload: sessionSchema(),
      failAction: (_r, h) => h.response({ status: 'invalid' }).code(400).takeover(),
    },
  },
  handler: (_r, h) => {
    const id = randomUUID();
    return h.response({ status: 'accepted', message: 'Request is being processed asynchronously. The result will be sent to the provided callback URL.', request_id: id }).code(202).header('location', `/api/v1/charging-session/${id}`);
  },
});
await server.start();
process.stdout.write(`${JSON.stringify({ msg: 'listening', port: server.info.port })}\n`);
process.on('SIGTERM', () => void server.stop().then(() => process.exit(0)));
