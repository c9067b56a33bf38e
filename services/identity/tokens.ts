import { randomBytes } from 'node:crypto';

/** Session and service tokens: 32 random bytes, base64url, with a prefix; stored as sha256 only (../secrets). */
const TOKEN_PATTERN = /^(sess|svc)_[A-Za-z0-9_-]{43}$/;

export function looksLikeToken(token: string, prefix: 'sess' | 'svc'): boolean {
  return TOKEN_PATTERN.test(token) && token.startsWith(`${prefix}_`);
}

export function newSessionId(): string {
  return `ses_${randomBytes(16).toString('base64url')}`;
}
