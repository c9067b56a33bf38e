import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { SecretKey } from '../protocol';
import { AppError } from './errors';

const SEALED_PREFIX = 'agentina-sealed:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Values kept sealed at rest: AES-256-GCM under the newest of a purpose's secrets, bound to a
 * context string (what the value belongs to), so a sealed value copied to another row does not
 * open. Older secrets still open what they sealed. `what` names the value in the one error.
 */
export function createSealer(secrets: () => SecretKey[], what: string) {
  const unavailable = () => new AppError('UNAVAILABLE', `A sealed ${what} cannot be opened with this server’s keys.`);
  return {
    seal(context: string, value: string): string {
      const keys = secrets();
      const key = keys[keys.length - 1]!;
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key.secret, iv).setAAD(Buffer.from(context, 'utf8'));
      const ct = Buffer.concat([cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${SEALED_PREFIX}${key.kid}:${iv.toString('base64url')}:${ct.toString('base64url')}`;
    },

    open(context: string, sealed: string): string {
      const [kid, iv, ct] = sealed.startsWith(SEALED_PREFIX) ? sealed.slice(SEALED_PREFIX.length).split(':') : [];
      const key = secrets().find((k) => k.kid === kid);
      const body = Buffer.from(ct ?? '', 'base64url');
      if (!key || !iv || body.length < TAG_BYTES) throw unavailable();
      try {
        const decipher = createDecipheriv('aes-256-gcm', key.secret, Buffer.from(iv, 'base64url')).setAAD(
          Buffer.from(context, 'utf8'),
        );
        decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
        return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(
          'utf8',
        );
      } catch {
        throw unavailable();
      }
    },
  };
}

export type Sealer = ReturnType<typeof createSealer>;
