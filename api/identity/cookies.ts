import type { FastifyRequest } from 'fastify';

/** The session cookies of the admin UI and the customer portal. */
export const ADMIN_COOKIE = '__Host-agentina_admin';
export const PORTAL_COOKIE = '__Host-agentina_portal';

/** The first value of cookie `name` in the request's Cookie header, if any. */
export function readCookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== 'string' || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** `__Host-` cookies must be Secure, Path=/ and carry no Domain; SameSite=Strict keeps them first-party. */
export function sessionCookie(name: string, token: string, maxAgeSeconds: number): string {
  return `${name}=${token}; Path=/; Max-Age=${maxAgeSeconds}; Secure; HttpOnly; SameSite=Strict`;
}

export function clearedCookie(name: string): string {
  return `${name}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict`;
}

/** The bearer token of an `Authorization: Bearer …` header, or undefined. */
export function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer[ ]+([^\s]{1,512})$/i.exec(h.trim());
  return m?.[1];
}
