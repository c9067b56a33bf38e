import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { SecretKey } from '../protocol';
import { AppError } from './errors';

/**
 * Values the server must read back in clear (an `http.get` task's header values, a webhook's
 * signing secret) are stored sealed: AES-256-GCM under the newest key of a secret purpose, bound
 * to what they belong to (`aad`), so a sealed value copied to another row does not open.
 */
const SEALED_PREFIX = 'agentina-sealed:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function createSealedBox(secrets: () => SecretKey[], refusal: string) {
  return {
    seal(aad: string, value: string): string {
      const keys = secrets();
      const key = keys[keys.length - 1]!;
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key.secret, iv).setAAD(Buffer.from(aad, 'utf8'));
      const ct = Buffer.concat([cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${SEALED_PREFIX}${key.kid}:${iv.toString('base64url')}:${ct.toString('base64url')}`;
    },

    /** The value in clear; UNAVAILABLE (with `refusal`) when no key here opens it. */
    open(aad: string, sealed: string): string {
      const [kid, iv, ct] = sealed.startsWith(SEALED_PREFIX) ? sealed.slice(SEALED_PREFIX.length).split(':') : [];
      const key = secrets().find((k) => k.kid === kid);
      const body = Buffer.from(ct ?? '', 'base64url');
      if (!key || !iv || body.length < TAG_BYTES) throw new AppError('UNAVAILABLE', refusal);
      try {
        const decipher = createDecipheriv('aes-256-gcm', key.secret, Buffer.from(iv, 'base64url')).setAAD(
          Buffer.from(aad, 'utf8'),
        );
        decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
        return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(
          'utf8',
        );
      } catch {
        throw new AppError('UNAVAILABLE', refusal);
      }
    },
  };
}
