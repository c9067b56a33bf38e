import { Agent, request } from 'node:https';
import type { z } from 'zod';
import {
  activateResponseSchema,
  heartbeatResponseSchema,
  nextTaskResponseSchema,
  statusResponseSchema,
  type ActivateRequest,
  type HeartbeatRequest,
  type TaskResultRequest,
} from '../protocol';

/**
 * The agent's only way out: HTTPS to the configured control plane, TLS 1.3 minimum, optionally
 * trusting a pinned CA only. Redirects are never followed, so no other host is ever contacted.
 * Every answer is parsed with the protocol schema before anyone sees it.
 */
export class ControlPlaneError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControlPlaneError';
  }
  /** The control plane refused our credential: the agent cannot prove itself any more. */
  get credentialRejected(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

export type TlsOptions = { ca?: string; minVersion?: 'TLSv1.3' };

export type HttpsJsonRequest = {
  method: 'GET' | 'POST';
  url: URL;
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs: number;
  signal?: AbortSignal;
  maxBytes?: number;
};
export type HttpsJsonResponse = {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
};

export function createHttpsAgent(tls: TlsOptions): Agent {
  return new Agent({
    keepAlive: true,
    maxSockets: 4,
    minVersion: 'TLSv1.3',
    ...(tls.ca ? { ca: tls.ca } : {}),
  });
}

/** One HTTPS exchange with a size cap and a timeout; never follows redirects. */
export function httpsRequest(agent: Agent, req: HttpsJsonRequest): Promise<HttpsJsonResponse> {
  if (req.url.protocol !== 'https:') return Promise.reject(new Error('only https:// URLs are allowed'));
  const maxBytes = req.maxBytes ?? 2 * 1024 * 1024;
  const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body), 'utf8');
  return new Promise((resolve, reject) => {
    const r = request(
      req.url,
      {
        method: req.method,
        agent,
        minVersion: 'TLSv1.3',
        timeout: req.timeoutMs,
        ...(req.signal ? { signal: req.signal } : {}),
        headers: {
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
          ...req.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            r.destroy(new Error(`response larger than ${maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`no answer within ${req.timeoutMs} ms`)));
    r.on('error', reject);
    r.end(payload);
  });
}

export type ControlPlaneClient = ReturnType<typeof createControlPlaneClient>;

export function createControlPlaneClient(input: {
  server: string;
  tls: TlsOptions;
  credential?: string;
  timeoutMs?: number;
}) {
  const base = new URL(input.server);
  if (base.protocol !== 'https:') throw new Error('the control plane URL must be https://');
  const agent = createHttpsAgent(input.tls);
  const timeoutMs = input.timeoutMs ?? 15_000;

  async function call<S extends z.ZodType>(
    method: 'GET' | 'POST',
    route: string,
    schema: S | null,
    opts: {
      body?: unknown;
      query?: Record<string, number | undefined>;
      extraWaitS?: number;
      signal?: AbortSignal;
      anonymous?: boolean;
    } = {},
  ): Promise<z.infer<S>> {
    const url = new URL(route, base);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = {};
    if (!opts.anonymous) {
      if (!input.credential) throw new Error('the agent is not activated (no credential)');
      headers.authorization = `Bearer ${input.credential}`;
    }
    const res = await httpsRequest(agent, {
      method,
      url,
      headers,
      body: opts.body,
      timeoutMs: timeoutMs + (opts.extraWaitS ?? 0) * 1000,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    let json: unknown = undefined;
    if (res.body.length > 0) {
      try {
        json = JSON.parse(res.body.toString('utf8'));
      } catch {
        throw new ControlPlaneError(
          res.status,
          'BAD_RESPONSE',
          `${method} ${route}: answer is not JSON (HTTP ${res.status})`,
        );
      }
    }
    if (res.status < 200 || res.status >= 300) {
      const err = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      const code = typeof err?.code === 'string' ? err.code.slice(0, 64) : 'HTTP_ERROR';
      const message = typeof err?.message === 'string' ? err.message.slice(0, 300) : `HTTP ${res.status}`;
      throw new ControlPlaneError(res.status, code, `${method} ${route}: ${message}`);
    }
    if (!schema) return undefined as z.infer<S>;
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new ControlPlaneError(res.status, 'BAD_RESPONSE', `${method} ${route}: answer does not match the protocol`);
    return parsed.data;
  }

  return {
    server: base.origin,
    activate: (body: ActivateRequest) =>
      call('POST', '/v1/agent/activate', activateResponseSchema, { body, anonymous: true }),
    status: (q: { since?: number; wait?: number; license?: number }, signal?: AbortSignal) =>
      call('GET', '/v1/agent/status', statusResponseSchema, {
        query: q,
        extraWaitS: q.wait ?? 0,
        ...(signal ? { signal } : {}),
      }),
    heartbeat: (body: HeartbeatRequest) => call('POST', '/v1/agent/heartbeat', heartbeatResponseSchema, { body }),
    nextTask: (q: { wait?: number }, signal?: AbortSignal) =>
      call('GET', '/v1/agent/tasks/next', nextTaskResponseSchema, {
        query: q,
        extraWaitS: q.wait ?? 0,
        ...(signal ? { signal } : {}),
      }),
    reportResult: (taskId: string, body: TaskResultRequest) =>
      call('POST', `/v1/agent/tasks/${encodeURIComponent(taskId)}/result`, null, { body }),
    deregister: () => call('POST', '/v1/agent/deregister', null, { body: {} }),
    close: () => agent.destroy(),
  };
}
