import pino, { stdSerializers, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { redactDeep, redactString } from '../protocol';

/**
 * pino with Agentina's redaction policy: fixed header paths are censored by pino itself, and every
 * logged object is walked so that any field named like a password, token or secret is replaced,
 * and prefixed secrets inside strings (URLs, messages) are scrubbed.
 */
const SERIALIZED = new Set(['req', 'res', 'err']);

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["x-agent-credential"]',
        'res.headers["set-cookie"]',
        'headers.authorization',
        'headers.cookie',
      ],
      censor: '[REDACTED]',
    },
    // Serialized request/response/error objects are redacted after serializing; every other
    // field is walked by the log formatter.
    serializers: {
      req: (req) => redactDeep(stdSerializers.req(req)),
      res: (res) => redactDeep(stdSerializers.res(res)),
      err: (err) => redactDeep(stdSerializers.err(err)),
    },
    formatters: {
      log: (obj) => {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(obj))
          out[k] = SERIALIZED.has(k) ? v : (redactDeep({ [k]: v }) as Record<string, unknown>)[k];
        return out;
      },
    },
    hooks: {
      logMethod(args, method) {
        const scrubbed = args.map((a) => (typeof a === 'string' ? redactString(a) : a)) as Parameters<typeof method>;
        method.apply(this, scrubbed);
      },
    },
  };
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return destination ? pino(loggerOptions(level), destination) : pino(loggerOptions(level));
}
