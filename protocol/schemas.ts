import { z } from 'zod';
import { idSchema } from './ids';
import { safeString } from './input';

/**
 * Building blocks shared by every protocol message: bounded strings, ISO times, hashes. Strings a
 * request carries are built on safeString (protocol/input.ts); `boundedText` is for what the
 * control plane answers (stored values are shown as they are, never refused on the way out).
 */
export const isoTime = safeString(40).datetime({ offset: true });
export const hex64 = safeString(64).regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');
export const boundedText = (max: number) => z.string().max(max);

export const licenseId = idSchema('lic');
export const policyId = idSchema('pol');
export const customerId = idSchema('cus');
export const agentId = idSchema('agt');
export const taskId = idSchema('tsk');

export const signatureSchema = z.strictObject({
  alg: z.literal('Ed25519'),
  kid: safeString(64).regex(/^[A-Za-z0-9._-]{1,64}$/),
  sig: safeString(100),
});

export { LICENSE_STATES, GOOD_LICENSE_STATES, AGENT_STATUSES } from './enums';
export type { LicenseState, AgentStatus } from './enums';
