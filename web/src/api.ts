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

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...init.headers, 'content-type': 'application/json' };
  }
  const res = await fetch(path, init);
  if (res.status === 204) return undefined as T;
  const json = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string; details?: Array<{ path: string; message: string }> } };
  if (!res.ok) {
    throw new ApiError(res.status, json.error?.code ?? 'HTTP_' + res.status, json.error?.message ?? res.statusText, json.error?.details ?? []);
  }
  return json as T;
}
