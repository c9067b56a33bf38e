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
