import { createHash, createHmac } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from './canonical-json';
import { hex64 } from './schemas';
import { safeString } from './input';

/**
 * Machine fingerprint as it crosses the wire: each component normalised on the machine and
 * hashed with HMAC-SHA256 under a random salt chosen at activation (so per license and per
 * agent), so raw serials never leave the machine and hashes cannot be linked across licenses.
 */
export { FINGERPRINT_COMPONENTS } from './enums';
export type { FingerprintComponent } from './enums';
import { FINGERPRINT_COMPONENTS, type FingerprintComponent } from './enums';

export const DEFAULT_FINGERPRINT_WEIGHTS: Readonly<Record<FingerprintComponent, number>> = {
  baseboard: 30,
  disk: 25,
  cpu: 20,
  mac: 15,
  hostname: 10,
};
export const DEFAULT_FINGERPRINT_THRESHOLD = 70;

export const fingerprintSaltSchema = safeString(64).regex(/^[A-Za-z0-9_-]{16,64}$/);
export const fingerprintHashesSchema = z.strictObject({
  baseboard: hex64,
  disk: hex64,
  cpu: hex64,
  mac: hex64,
  hostname: hex64,
});
export type FingerprintHashes = z.infer<typeof fingerprintHashesSchema>;

export function normaliseComponent(raw: string): string {
  return raw.normalize('NFKC').trim().toLowerCase().replace(/\s+/g, ' ');
}

export function hashComponent(salt: string, component: FingerprintComponent, raw: string): string {
  return createHmac('sha256', salt)
    .update(`${component}\0${normaliseComponent(raw)}`)
    .digest('hex');
}

/** Binds a license document to one machine: sha256 of the canonical {salt, components}. */
export function fingerprintCommitment(salt: string, hashes: FingerprintHashes): string {
  return createHash('sha256')
    .update(canonicalJson({ salt, components: hashes }))
    .digest('hex');
}

export type FingerprintScore = { score: number; changed: FingerprintComponent[] };

/** Weighted share (0-100) of components that still match the activation record. */
export function scoreFingerprint(
  recorded: FingerprintHashes,
  current: FingerprintHashes,
  weights: Readonly<Record<FingerprintComponent, number>> = DEFAULT_FINGERPRINT_WEIGHTS,
): FingerprintScore {
  const total = FINGERPRINT_COMPONENTS.reduce((n, c) => n + weights[c], 0);
  let matched = 0;
  const changed: FingerprintComponent[] = [];
  for (const c of FINGERPRINT_COMPONENTS) {
    if (recorded[c] === current[c]) matched += weights[c];
    else changed.push(c);
  }
  return { score: total === 0 ? 0 : Math.round((matched * 100) / total), changed };
}
