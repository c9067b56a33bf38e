import { createHash, createHmac, sign, type KeyObject } from 'node:crypto';
import { Agent, request } from 'node:https';
import type { z } from 'zod';
import {
  formatEd25519Proof,
  formatHmacProof,
  parseSession,
  proofMessage,
  PROOF_HEADER,
  SERVER_TIME_HEADER,
  SESSION_HEADER,
  type AgentSession,
  activateResponseSchema,
  heartbeatResponseSchema,
  nextTaskResponseSchema,
  signedRevocationsSchema,
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
  /** The body's exact JSON text, when the caller already serialized it (it signs those bytes). */
  rawBody?: string;
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
  const payload =
    req.body === undefined
      ? undefined
      : Buffer.from(typeof req.rawBody === 'string' ? req.rawBody : JSON.stringify(req.body), 'utf8');
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

/**
 * Proofs of possession (protocol/agent-proof.ts): signed with the agent key, or, while a session
 * handed out by the control plane lasts, an HMAC under the session key (held in memory only).
 * Timestamps follow the control plane's clock once it has told its time in a refusal.
 */
function createProver(key: KeyObject) {
  let session: (AgentSession & { secret: Buffer }) | null = null;
  let offsetMs = 0;
  const sessionMarginMs = 30_000;
  return {
    prove(method: string, pathAndQuery: string, body: string, forceSigned: boolean): string {
      const t = Date.now() + offsetMs;
      const bodySha256 = createHash('sha256').update(body).digest('hex');
      const message = proofMessage({ method, path: pathAndQuery, bodySha256, t });
      if (!forceSigned && session && session.expiresAt - t > sessionMarginMs) {
        const mac = createHmac('sha256', session.secret).update(message).digest('base64url');
        return formatHmacProof(t, session.expiresAt, mac);
      }
      return formatEd25519Proof(t, sign(null, Buffer.from(message), key).toString('base64url'));
    },
    /** A 401 that refused the proof (not the credential): forget the session, learn the server's time. */
    refused(headers: HttpsJsonResponse['headers']): boolean {
      const serverTime = Number(headers[SERVER_TIME_HEADER]);
      if (!Number.isFinite(serverTime) || serverTime <= 0) return false;
      session = null;
      offsetMs = serverTime - Date.now();
      return true;
    },
    answered(headers: HttpsJsonResponse['headers']): void {
      const s = parseSession(headers[SESSION_HEADER]);
      if (s) session = { ...s, secret: Buffer.from(s.key, 'base64url') };
    },
    /** A session is bound to the credential it was handed out for: a new credential needs a new one. */
    forgetSession(): void {
      session = null;
    },
  };
}

export function createControlPlaneClient(input: {
  server: string;
  tls: TlsOptions;
  credential?: string;
  /** The agent's Ed25519 key: with a credential, every request carries a proof of possession. */
  agentKey?: KeyObject;
  timeoutMs?: number;
}) {
  const base = new URL(input.server);
  if (base.protocol !== 'https:') throw new Error('the control plane URL must be https://');
  if (input.credential && !input.agentKey) throw new Error('an agent credential needs the agent key');
  const agent = createHttpsAgent(input.tls);
  const timeoutMs = input.timeoutMs ?? 15_000;
  const prover = input.agentKey ? createProver(input.agentKey) : null;
  let credential = input.credential;
  /** The control plane refused `signatures=batch` (an older API): status requests go without it. */
  let batchRefused = false;

  async function call<S extends z.ZodType>(
    method: 'GET' | 'POST',
    route: string,
    schema: S | null,
    opts: {
      body?: unknown;
      query?: Record<string, number | string | undefined>;
      extraWaitS?: number;
      signal?: AbortSignal;
      anonymous?: boolean;
    } = {},
  ): Promise<z.infer<S>> {
    const url = new URL(route, base);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const rawBody = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const send = (retry: boolean) => {
      const headers: Record<string, string> = {};
      if (!opts.anonymous) {
        if (!credential || !prover) throw new Error('the agent is not activated (no credential)');
        headers.authorization = `Bearer ${credential}`;
        headers[PROOF_HEADER] = prover.prove(method, url.pathname + url.search, rawBody ?? '', retry);
      }
      return httpsRequest(agent, {
        method,
        url,
        headers,
        ...(rawBody !== undefined ? { body: opts.body, rawBody } : {}),
        timeoutMs: timeoutMs + (opts.extraWaitS ?? 0) * 1000,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    };
    let res = await send(false);
    // A refused proof (a session the server no longer takes, a skewed clock): once more, signed with the key.
    if (prover && res.status === 401 && prover.refused(res.headers)) res = await send(true);
    prover?.answered(res.headers);
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
    /**
     * This agent verifies batch signatures (protocol/batch-signature.ts) and says so on each status
     * request, unless the control plane refused the field (an older API answers 400 to a query
     * field it does not know): then it asks as older agents do, for as long as this process runs.
     */
    async status(q: { since?: number; wait?: number; license?: number }, signal?: AbortSignal) {
      const ask = (batch: boolean) =>
        call('GET', '/v1/agent/status', statusResponseSchema, {
          query: batch ? { ...q, signatures: 'batch' } : q,
          extraWaitS: q.wait ?? 0,
          ...(signal ? { signal } : {}),
        });
      if (!batchRefused) {
        try {
          return await ask(true);
        } catch (err) {
          if (!(err instanceof ControlPlaneError && err.status === 400)) throw err;
          batchRefused = true;
        }
      }
      return ask(false);
    },
    revocations: (q: { since: number; limit: number }, signal?: AbortSignal) =>
      call('GET', '/v1/agent/revocations', signedRevocationsSchema, { query: q, ...(signal ? { signal } : {}) }),
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
    /** The next generation of the credential (rotation): every request from now on uses it. */
    useCredential(next: string): void {
      credential = next;
      prover?.forgetSession();
    },
    close: () => agent.destroy(),
  };
}
