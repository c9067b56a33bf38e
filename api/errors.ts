import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { AppError, errorBody, isDatabaseUnavailable, type ErrorCode, type ErrorDetail } from '../services/errors';

export { AppError, errorBody };
export type { ErrorBody } from '../services/errors';
export type { ErrorCode, ErrorDetail };

/**
 * Each refusal code's HTTP status. Every error answer has the one shape
 * `{ error: { code, message, requestId, details? } }`; 5xx answers say nothing internal.
 */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = {
  VALIDATION_FAILED: 400,
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  PROOF_REJECTED: 401,
  CREDENTIAL_SUPERSEDED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  GONE: 410,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNPROCESSABLE: 422,
  LOCKED: 423,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  NOT_READY: 503,
  UNAVAILABLE: 503,
};

/** Fastify's own 4xx errors (bad JSON, wrong content type, body too large) mapped onto our codes. */
function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'FORBIDDEN';
    case 404:
      return 'NOT_FOUND';
    case 405:
      return 'METHOD_NOT_ALLOWED';
    case 409:
      return 'CONFLICT';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 415:
      return 'UNSUPPORTED_MEDIA_TYPE';
    case 429:
      return 'RATE_LIMITED';
    default:
      return 'BAD_REQUEST';
  }
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof AppError) {
      if (err.headers) void reply.headers(err.headers);
      return reply.status(ERROR_STATUS[err.code]).send(errorBody(err.code, err.message, req.id, err.details));
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const details = err.validation.map((v) => ({
        path: [
          err.validationContext,
          ...String(v.instancePath ?? '')
            .split('/')
            .filter(Boolean),
        ]
          .filter(Boolean)
          .join('.'),
        message: v.message ?? 'invalid',
      }));
      return reply.status(400).send(errorBody('VALIDATION_FAILED', 'The request is not valid.', req.id, details));
    }
    if (err.validation) {
      const details = err.validation.map((v) => ({
        path: `${err.validationContext ?? ''}${v.instancePath ?? ''}`,
        message: v.message ?? 'invalid',
      }));
      return reply.status(400).send(errorBody('VALIDATION_FAILED', 'The request is not valid.', req.id, details));
    }
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status >= 400 && status < 500 && !isResponseSerializationError(err)) {
      if (status === 429 && err.message)
        return reply.status(429).send(errorBody('RATE_LIMITED', 'Too many requests; try again later.', req.id));
      // Fastify's own client errors carry safe, fixed messages (e.g. "Unsupported Media Type").
      const message = err.code?.startsWith('FST_') ? err.message : 'The request could not be processed.';
      return reply.status(status).send(errorBody(codeForStatus(status), message, req.id));
    }
    if (isDatabaseUnavailable(err)) {
      req.log.warn({ err }, 'database unavailable');
      return reply.status(503).send(errorBody('UNAVAILABLE', 'The service is briefly unavailable; try again.', req.id));
    }
    req.log.error({ err }, 'unhandled error');
    return reply.status(500).send(errorBody('INTERNAL', 'Something went wrong on our side.', req.id));
  });

  app.setNotFoundHandler((req, reply) => {
    return reply.status(404).send(errorBody('NOT_FOUND', `No route ${req.method} ${req.url.split('?')[0]}`, req.id));
  });
}
