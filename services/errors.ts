/**
 * The fixed list of refusal codes a service may give. The API maps each to its HTTP status
 * (api/errors.ts); the CLI and the worker read the code and the message.
 */
export const ERROR_CODES = [
  'VALIDATION_FAILED',
  'BAD_REQUEST',
  'UNAUTHENTICATED',
  // An agent credential without a valid proof of possession of the agent's key (a 401).
  'PROOF_REJECTED',
  // An agent credential of a superseded generation, presented with a valid proof: a clone (a 401).
  'CREDENTIAL_SUPERSEDED',
  'FORBIDDEN',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'CONFLICT',
  'GONE',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNPROCESSABLE',
  'LOCKED',
  'RATE_LIMITED',
  'INTERNAL',
  'NOT_READY',
  'UNAVAILABLE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];
export type ErrorDetail = { path: string; message: string };

/**
 * An expected refusal: its message is shown to the caller as is, so it must hold no secret.
 * `headers` are hints for an HTTP answer (e.g. Retry-After).
 */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetail[],
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/** Socket errors of a database connection that could not be made or was cut. */
const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** SQLSTATEs of a server shutting down, starting up, or out of connections (classes 08 and 57P, 53300). */
const TRANSIENT_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[1-3]|53300)$/;
const CONNECTION_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/;

/**
 * True when `err` says PostgreSQL could not be reached (down, restarting, out of connections),
 * not that the request was wrong: the API answers 503 (try again) instead of 500.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_ERRNOS.has(code) || TRANSIENT_SQLSTATE.test(code))) return true;
  const message = (err as { message?: unknown }).message;
  return typeof message === 'string' && CONNECTION_MESSAGES.test(message);
}

/** The one shape of every error answer: `{ error: { code, message, requestId, details? } }`. */
export type ErrorBody = { error: { code: ErrorCode; message: string; requestId: string; details?: ErrorDetail[] } };

export function errorBody(code: ErrorCode, message: string, requestId: string, details?: ErrorDetail[]): ErrorBody {
  return { error: details && details.length ? { code, message, requestId, details } : { code, message, requestId } };
}
