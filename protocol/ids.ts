import { randomBytes } from 'node:crypto';
import { safeString } from './input';

/**
 * Public ids and secrets carry a prefix, so a leaked string says what it is.
 * Ids: 16 random bytes, base64url (22 chars). Secrets: 32 random bytes.
 */
export const ID_PREFIXES = [
  'adm',
  'cus',
  'usr',
  'svcacct',
  'lic',
  'agt',
  'tsk',
  'rel',
  'tok',
  'ckp',
  'pol',
  'whk',
] as const;
export type IdPrefix = (typeof ID_PREFIXES)[number];

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBytes(16).toString('base64url')}`;
}

export function newSecret(prefix: 'act' | 'svc' | 'agc' | 'sess'): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function idSchema(prefix: IdPrefix) {
  return safeString(72).regex(new RegExp(`^${prefix}_[A-Za-z0-9_-]{16,64}$`), `must be a ${prefix}_ id`);
}
