import type { FastifyRequest } from 'fastify';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export type CsrfRefusal = 'content_type' | 'sec_fetch_site' | 'origin_missing' | 'origin_not_allowed';

/**
 * For requests authenticated by an ambient credential (a cookie): a state-changing request must
 * be JSON (a cross-site form cannot send that without a CORS preflight we never grant) and must
 * come from our own origin — `Sec-Fetch-Site: same-origin` from modern browsers, else an `Origin`
 * on the allow-list. No signal at all is refused: scripts use service tokens.
 */
export function csrfRefusal(req: FastifyRequest, allowedOrigins: ReadonlySet<string>): CsrfRefusal | undefined {
  if (SAFE_METHODS.has(req.method)) return undefined;
  const type = req.headers['content-type'];
  if (typeof type !== 'string' || type.split(';')[0]!.trim().toLowerCase() !== 'application/json')
    return 'content_type';
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin' ? undefined : 'sec_fetch_site';
  const origin = req.headers.origin;
  if (typeof origin !== 'string') return 'origin_missing';
  return allowedOrigins.has(origin) ? undefined : 'origin_not_allowed';
}

/** `https://host:port` normalised the way browsers send `Origin`. */
export function originOf(url: string): string {
  return new URL(url).origin;
}
