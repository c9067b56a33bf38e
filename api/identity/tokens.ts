import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

/** Session and service tokens: 32 random bytes, base64url, with a prefix; stored as sha256 only. */
export const ADMIN_COOKIE = '__Host-agentina_admin';
export const PORTAL_COOKIE = '__Host-agentina_portal';

const TOKEN_PATTERN = /^(sess|svc)_[A-Za-z0-9_-]{43}$/;

export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Equal-length hex digests compared in constant time. */
export function hashesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}

export function looksLikeToken(token: string, prefix: 'sess' | 'svc'): boolean {
  return TOKEN_PATTERN.test(token) && token.startsWith(`${prefix}_`);
}

export function newSessionId(): string {
  return `ses_${randomBytes(16).toString('base64url')}`;
}

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
