import { z } from 'zod';
import { idSchema } from './ids';

/** Building blocks shared by every protocol message: bounded strings, ISO times, hashes. */
export const isoTime = z.string().max(40).datetime({ offset: true });
export const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');
export const boundedText = (max: number) => z.string().max(max);

export const licenseId = idSchema('lic');
export const customerId = idSchema('cus');
export const agentId = idSchema('agt');
export const taskId = idSchema('tsk');

export const signatureSchema = z.strictObject({
  alg: z.literal('Ed25519'),
  kid: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  sig: z.string().max(100),
});

export { LICENSE_STATES, GOOD_LICENSE_STATES, AGENT_STATUSES } from './enums';
export type { LicenseState, AgentStatus } from './enums';
