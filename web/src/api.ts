/** JSON calls to the control plane with the session cookie; errors carry the API's one error shape. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Array<{ path: string; message: string }> = [],
  ) {
    super(message);
  }
}

const SAFE = new Set(['GET', 'HEAD']);

/** Dispatched on window when a call is refused for want of a valid session. */
export const SESSION_ENDED = 'agentina:session-ended';

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  // State changes are always JSON, even without a payload: the API's CSRF rule requires it.
  if (body !== undefined || !SAFE.has(method)) {
    init.body = JSON.stringify(body ?? {});
    init.headers = { ...init.headers, 'content-type': 'application/json' };
  }
  const res = await fetch(path, init);
  if (res.status === 204) return undefined as T;
  const json = (await res.json().catch(() => ({}))) as {
    error?: { code: string; message: string; details?: Array<{ path: string; message: string }> };
  };
  if (!res.ok) {
    // A session that ended (idle, expired, deactivated) outside a sign-in attempt: the shell asks to sign in again.
    if (res.status === 401 && !path.endsWith('/login')) window.dispatchEvent(new Event(SESSION_ENDED));
    throw new ApiError(
      res.status,
      json.error?.code ?? 'HTTP_' + res.status,
      json.error?.message ?? res.statusText,
      json.error?.details ?? [],
    );
  }
  return json as T;
}

/** `path?k=v&…` with empty values left out. */
export function withQuery(path: string, query: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
