/**
 * The redaction policy shared by the control plane's logs, answers and stored free text and the
 * agent's logs and journal: values under secret-looking keys are replaced, and strings are scrubbed
 * of prefixed secrets (`act_…`, `svc_…`, `agc_…`), bearer credentials, passwords in URLs
 * (`scheme://user:pass@host`), secret-looking query parameters and `key=value` / `key: value` /
 * `"key":"value"` pairs whose key names a secret.
 */
export const REDACTED = '[REDACTED]';

const SECRET_KEY =
  /(pass(word|wd|phrase)?|pwd|secret|token|authorization|cookie|credential|api[-_]?key|private[-_]?key|access[-_]?key|otp)/i;
const SECRET_PREFIXES = ['act', 'svc', 'agc', 'sess'];
const PREFIXED_SECRET = new RegExp(`\\b(?:${SECRET_PREFIXES.join('|')})_[A-Za-z0-9_-]{8,}`, 'g');
const BEARER = /\b(Bearer|Basic|Digest|Negotiate)\s+[A-Za-z0-9._~+/=-]+/gi;
/** The password of a URL's userinfo; an unencoded `@` in it is taken up to the last `@` of the authority. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]{1,30}:\/\/[^\s/?#@:"'<>]{0,256}:)[^\s/?#"'<>]{0,256}@/gi;
const SECRET_QUERY = /([?&;](?:[a-z_]*(?:token|password|secret|key))=)[^&\s#]+/gi;
/**
 * A key that names a secret, quoted or not, then `=`, `:` or `=>`, then the value: a quoted
 * string, or everything up to a separator (an auth scheme word such as `Token` is taken with the
 * word after it). Every repetition that could rescan the text is bounded, so a hostile string
 * costs linear time. The key must END with the secret word (`db_password`, `X-Api-Key`,
 * `accessToken`), so `max_tokens` or `secret_name` are left alone.
 */
const SECRET_NAME =
  '[A-Za-z0-9_.-]{0,40}?(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|apikey|authorization|auth|credentials?|private[-_]?key|access[-_]?key|cookie|otp)';
const SECRET_ASSIGNMENT = new RegExp(
  `(?<![A-Za-z0-9_.-])(["']?)(${SECRET_NAME})\\1(\\s*(?:=>|=|:)\\s*)` +
    `(\\[REDACTED\\]|"(?:[^"\\\\\\n]|\\\\.){0,2000}"|'(?:[^'\\\\\\n]|\\\\.){0,2000}'|(?:(?:Bearer|Basic|Token|Digest|Bot|ApiKey)\\s+)?(?:\\[REDACTED\\]|[^\\s"',;&}\\]]+))`,
  'gi',
);
const PEM = /-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----[\s\S]{0,8192}?-----END [A-Z ]{0,20}PRIVATE KEY-----/g;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

function redactValue(value: string): string {
  if (value === REDACTED) return value;
  const q = value[0];
  return q === '"' || q === "'" ? `${q}${REDACTED}${q}` : REDACTED;
}

export function redactString(s: string): string {
  return s
    .replace(PEM, REDACTED)
    .replace(BEARER, `$1 ${REDACTED}`)
    .replace(PREFIXED_SECRET, REDACTED)
    .replace(URL_PASSWORD, `$1${REDACTED}@`)
    .replace(SECRET_QUERY, `$1${REDACTED}`)
    .replace(
      SECRET_ASSIGNMENT,
      (_m, q: string, key: string, sep: string, value: string) => `${q}${key}${q}${sep}${redactValue(value)}`,
    );
}

/**
 * Free text a caller gives (names, labels, reasons) as it is stored and shown: scrubbed by the
 * policy, then cut to the column's length (a `[REDACTED]` marker may be longer than the secret).
 */
export function scrubFreeText(s: string, maxLength: number): string {
  // Also storable: what PostgreSQL refuses (NUL) and what no text should carry (other controls,
  // lone surrogates) becomes U+FFFD, so a scrubbed value can never fail the write that records it.
  return (
    redactString(s)
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '\uFFFD')
      .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
      .slice(0, maxLength)
  );
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
