import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Every secret the control plane hands out (sessions, service tokens, activation tokens, agent
 * credentials) is stored as its sha256 only; these are the one hash and the one comparison.
 */
export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Equal-length hex digests compared in constant time. */
export function hashesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}

/** A presented secret against the configured one, in time independent of where they differ (or their lengths). */
export function secretMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const x = createHash('sha256').update(given, 'utf8').digest();
  const y = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(x, y);
}
