/**
 * The redaction policy shared by the control plane's logs and the agent's logs and journal:
 * values under secret-looking keys are replaced, and strings are scrubbed of prefixed secrets
 * (`act_…`, `svc_…`, `agc_…`), bearer credentials and secret-looking query parameters.
 */
export const REDACTED = '[REDACTED]';

const SECRET_KEY = /(pass(word|phrase)?|secret|token|authorization|cookie|credential|api[-_]?key|private[-_]?key|otp)/i;
const SECRET_PREFIXES = ['act', 'svc', 'agc', 'sess'];
const PREFIXED_SECRET = new RegExp(`\\b(?:${SECRET_PREFIXES.join('|')})_[A-Za-z0-9_-]{8,}`, 'g');
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
const SECRET_QUERY = /([?&;](?:[a-z_]*(?:token|password|secret|key))=)[^&\s#]+/gi;
const SECRET_ASSIGNMENT =
  /\b((?:pass(?:word|phrase)?|secret|token|api[-_]?key|credential)\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&,;]+)/gi;
const PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

export function redactString(s: string): string {
  return s
    .replace(PEM, REDACTED)
    .replace(BEARER, `$1 ${REDACTED}`)
    .replace(PREFIXED_SECRET, REDACTED)
    .replace(SECRET_QUERY, `$1${REDACTED}`)
    .replace(SECRET_ASSIGNMENT, `$1${REDACTED}`);
}

/** A redacted deep copy; never mutates its input. Depth-limited so a hostile object cannot hang it. */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 12) return '[Truncated]';
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1));
  if (value instanceof Error) {
    return {
      type: value.name,
      message: redactString(value.message),
      stack: value.stack ? redactString(value.stack) : undefined,
    };
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSecretKey(k) && v !== undefined && v !== null ? REDACTED : redactDeep(v, depth + 1);
  }
  return out;
}
