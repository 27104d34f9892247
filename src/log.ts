import pino, { type DestinationStream, type Logger } from 'pino';
import { batchedStdout } from './logsink.ts';

// JSON lines on stdout. Callers log masked tokens only; the redaction below is a second
// line of defence should a full token ever reach a log call under its usual name.

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'chargegate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['token', '*.token', 'body.driver_token', 'payload.driver_token'], censor: '[masked]' },
    },
    destination ?? (batchedStdout() as unknown as DestinationStream),
  );
}
