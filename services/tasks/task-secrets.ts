import { REDACTED, redactDeep, type SecretKey } from '../../protocol';
import { AppError } from '../errors';
import { createSealedBox } from '../sealed-box';

/** Header values shorter than this are not scrubbed out of results (too likely to hit ordinary text). */
const MIN_SCRUB_LENGTH = 4;

export type TaskHeaders = Record<string, string>;

/** The headers of an http.get payload, or null when it has none; a malformed one is refused. */
export function httpGetHeaders(kind: string, payload: Record<string, unknown>): TaskHeaders | null {
  if (kind !== 'http.get' || payload.headers === undefined) return null;
  const h = payload.headers;
  if (h === null || typeof h !== 'object' || Array.isArray(h) || Object.values(h).some((v) => typeof v !== 'string'))
    throw new AppError('BAD_REQUEST', 'http.get headers must be an object of header names to string values.');
  return h as TaskHeaders;
}

const aad = (taskId: string, name: string): string => `${taskId}\n${name}`;

/**
 * The header values of an `http.get` task are credentials for the agent's target. They are stored
 * sealed (AES-256-GCM under the `task-secrets` key, bound to the task id and header name, so a
 * sealed value copied to another task or header does not open), opened only for the agent that
 * leases the task, and shown as [REDACTED] in every answer after creation. The rest of a payload
 * is stored as given and shown through the redaction policy.
 */
export function createTaskSecrets(secrets: () => SecretKey[]) {
  const box = createSealedBox(secrets, 'A sealed task header cannot be opened with this server’s task-secrets keys.');
  const seal = (taskId: string, name: string, value: string): string => box.seal(aad(taskId, name), value);
  const open = (taskId: string, name: string, sealed: string): string => box.open(aad(taskId, name), sealed);

  const mapHeaders = (payload: Record<string, unknown>, f: (name: string, v: string) => string) => {
    const headers = payload.headers as TaskHeaders;
    return { ...payload, headers: Object.fromEntries(Object.entries(headers).map(([n, v]) => [n, f(n, v)])) };
  };

  return {
    /** The payload to store: http.get header values sealed, everything else as given. */
    sealPayload(taskId: string, kind: string, payload: Record<string, unknown>): Record<string, unknown> {
      if (!httpGetHeaders(kind, payload)) return payload;
      return mapHeaders(payload, (n, v) => seal(taskId, n, v));
    },
    /** The payload the leasing agent gets: header values opened. */
    openPayload(taskId: string, kind: string, stored: Record<string, unknown>): Record<string, unknown> {
      if (!httpGetHeaders(kind, stored)) return stored;
      return mapHeaders(stored, (n, v) => open(taskId, n, v));
    },
    /** The header values in clear, to scrub them out of what the agent reports; [] if they cannot be opened. */
    headerValues(taskId: string, kind: string, stored: Record<string, unknown>): string[] {
      try {
        const h = httpGetHeaders(kind, stored);
        return h ? Object.entries(h).map(([n, v]) => open(taskId, n, v)) : [];
      } catch {
        return [];
      }
    },
  };
}

export type TaskSecrets = ReturnType<typeof createTaskSecrets>;

/** What answers show of a stored payload: header values replaced, the rest through the redaction policy. */
export function payloadView(kind: string, stored: Record<string, unknown>): Record<string, unknown> {
  const shown = redactDeep(stored) as Record<string, unknown>;
  let headers: TaskHeaders | null = null;
  try {
    headers = httpGetHeaders(kind, stored);
  } catch {
    headers = null;
  }
  if (!headers) return shown;
  return { ...shown, headers: Object.fromEntries(Object.keys(headers).map((n) => [n, REDACTED])) };
}

/** Replaces every occurrence of the given values in strings (deeply); other values are kept. */
export function scrubValues<T>(value: T, secrets: readonly string[]): T {
  const list = secrets.filter((s) => s.length >= MIN_SCRUB_LENGTH);
  if (list.length === 0) return value;
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return list.reduce((s, secret) => s.split(secret).join(REDACTED), v);
    if (v === null || typeof v !== 'object' || depth > 32) return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [walk(k, depth + 1) as string, walk(x, depth + 1)]));
  };
  return walk(value, 0) as T;
}
