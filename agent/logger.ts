import pino, { type DestinationStream, type Logger } from 'pino';
import { redactDeep, redactString } from '../protocol';

export type AgentLogger = Logger;

/**
 * pino with the shared redaction policy applied to every record: secret-looking keys are
 * replaced, and prefixed secrets or bearer values inside any string (including the message) are
 * scrubbed before the line is written.
 */
export function createAgentLogger(
  level: string,
  destination: DestinationStream = pino.destination({ dest: 1, sync: true }),
): AgentLogger {
  return pino(
    {
      level,
      base: { svc: 'agentina-agent' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { log: (obj) => redactDeep(obj) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          const cleaned = args.map((a) => (typeof a === 'string' ? redactString(a) : a)) as Parameters<typeof method>;
          return method.apply(this, cleaned);
        },
      },
      serializers: { err: (e: unknown) => redactDeep(e) },
    },
    destination,
  );
}
