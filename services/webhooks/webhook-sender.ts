import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { WEBHOOK_SECRET_PREFIX } from '../../protocol';
import { resolveTarget, type AllowList } from './outbound-address';

/** Standard Webhooks: a secret is `whsec_` + base64 of 24–64 random bytes (we use 32). */
export function newWebhookSecret(): string {
  return `${WEBHOOK_SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

/**
 * The `webhook-signature` header: `v1,<base64 HMAC-SHA256>` over `<id>.<timestamp>.<body>` per
 * secret, space-separated, so during a rotation's overlap both the new and the old secret sign.
 */
export function signWebhook(secrets: readonly string[], id: string, timestamp: number, body: string): string {
  return secrets
    .map((s) => {
      const key = Buffer.from(s.slice(WEBHOOK_SECRET_PREFIX.length), 'base64');
      return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
    })
    .join(' ');
}

export type SendLimits = {
  /** The whole attempt: connect, answer and the read of the excerpt. */
  timeoutMs: number;
  /** How much of the answer is read (and kept as the excerpt); the rest is never read. */
  maxResponseBytes: number;
};
export const DEFAULT_SEND_LIMITS: SendLimits = { timeoutMs: 10_000, maxResponseBytes: 1024 };

export type SendResult = {
  ok: boolean;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  responseExcerpt: string | null;
};

/**
 * One POST to a receiver. Refused before connecting when the URL is not https (unless its host
 * is allowed) or resolves to a non-public address; the connection goes to the checked address
 * (the hostname still names the TLS certificate and the Host header); redirects are not
 * followed (a 3xx is a failure); the attempt is bounded in time and in bytes read.
 */
export async function sendWebhook(input: {
  url: string;
  headers: Record<string, string>;
  body: string;
  allow: AllowList;
  limits?: SendLimits;
  now?: () => number;
  /** How names are resolved (the system resolver unless given): resolved once, then pinned. */
  resolve?: Parameters<typeof resolveTarget>[2];
}): Promise<SendResult> {
  const limits = input.limits ?? DEFAULT_SEND_LIMITS;
  const now = input.now ?? (() => performance.now());
  const started = now();
  const done = (r: Omit<SendResult, 'latencyMs'>): SendResult => ({ ...r, latencyMs: Math.round(now() - started) });
  const refuse = (error: string) => done({ ok: false, statusCode: null, error, responseExcerpt: null });

  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    return refuse('refused: the URL does not parse');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && input.allow.host(url.hostname)))
    return refuse('refused: receivers must use https');
  if (url.username || url.password) return refuse('refused: the URL carries credentials');
  const target = await resolveTarget(url.hostname, input.allow, input.resolve);
  if (!target.ok) return refuse(target.error);

  // The connection uses the address checked above, never a second resolution.
  const pinned: LookupFunction = (_host, opts, cb) => {
    if (opts.all) cb(null, [{ address: target.address, family: target.family }]);
    else cb(null, target.address, target.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<SendResult>((resolve) => {
    let settled = false;
    const finish = (r: Omit<SendResult, 'latencyMs'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(done(r));
    };
    const req = client.request(
      url,
      {
        method: 'POST',
        headers: { ...input.headers, 'content-length': String(Buffer.byteLength(input.body)) },
        lookup: pinned,
        agent: false,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        const answer = () => {
          const excerpt = Buffer.concat(chunks).subarray(0, limits.maxResponseBytes).toString('utf8');
          const ok = status >= 200 && status < 300;
          finish({
            ok,
            statusCode: status,
            error: ok ? null : status >= 300 && status < 400 ? 'redirect not followed' : `HTTP ${status}`,
            responseExcerpt: excerpt.replace(/\uFFFD+$/u, '') || null,
          });
        };
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          size += c.length;
          if (size >= limits.maxResponseBytes) answer(); // enough: an endless answer is not read on
        });
        res.on('end', answer);
        res.on('error', answer);
      },
    );
    const timer = setTimeout(
      () =>
        finish({ ok: false, statusCode: null, error: `timed out after ${limits.timeoutMs} ms`, responseExcerpt: null }),
      limits.timeoutMs,
    );
    req.on('error', (err) =>
      finish({
        ok: false,
        statusCode: null,
        error: `connection failed: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
        responseExcerpt: null,
      }),
    );
    req.end(input.body);
  });
}
