import { createHash } from 'node:crypto';
import { z } from 'zod';
import { activateResponseSchema, releaseVersionSchema, signedStatusSchema } from './agent-api';
import { canonicalJson } from './canonical-json';
import { fingerprintHashesSchema, fingerprintSaltSchema } from './fingerprint';
import { idSchema } from './ids';
import { safeString } from './input';
import { agentId, hex64, isoTime, licenseId, signatureSchema } from './schemas';

/**
 * The files of air-gapped activation and renewal. They travel by hand (a USB stick, a ticket),
 * so each names its format and carries what makes it usable on one machine only:
 *
 * - the request (`agentina-agent activate --offline-request`): the agent's public key, salted
 *   fingerprint, version, the activation token's public id and a random request id; never a
 *   secret, so it may be mailed.
 * - the response (made by an admin or the customer with the token): the same answer as online
 *   activation (credential, bound license, signed status) plus a signed binding naming the
 *   digest of the one request it answers and the sha256 of the credential it carries.
 * - the status file (`agentina license status-file`): a signed status answer whose `graceDays`
 *   is the window it was issued for; it is good until serverTime + graceDays days.
 */
export const OFFLINE_REQUEST_FORMAT = 'agentina.offline-activation-request/v1';
export const OFFLINE_RESPONSE_FORMAT = 'agentina.offline-activation-response/v1';
export const OFFLINE_BINDING_KIND = 'agentina.offline-activation/v1';
export const STATUS_FILE_FORMAT = 'agentina.status-file/v1';
/** The longest window a status file may be issued for (the status answer's graceDays bound). */
export const STATUS_FILE_MAX_DAYS = 365;

export const activationTokenIdSchema = idSchema('tok');

export const offlineActivationRequestSchema = z.strictObject({
  format: z.literal(OFFLINE_REQUEST_FORMAT),
  /** Random, chosen by the agent: the response must name this request and no other. */
  requestId: safeString(64).regex(/^[A-Za-z0-9_-]{22,64}$/),
  /** The public id (tok_…) of the activation token that will be spent for this request. */
  tokenId: activationTokenIdSchema,
  publicKey: safeString(1000, { multiline: true }).min(40),
  fingerprint: z.strictObject({ salt: fingerprintSaltSchema, components: fingerprintHashesSchema }),
  agentVersion: releaseVersionSchema,
  hostnameHint: safeString(255).optional(),
  createdAt: isoTime,
});
export type OfflineActivationRequest = z.infer<typeof offlineActivationRequestSchema>;

export const offlineBindingSchema = z.strictObject({
  kind: z.literal(OFFLINE_BINDING_KIND),
  /** sha256 of the request's canonical JSON: the agent's key, fingerprint, token id and request id. */
  requestDigest: hex64,
  agentId,
  licenseId,
  /** sha256 of the credential in this response, so it cannot be swapped unnoticed. */
  credentialSha256: hex64,
  issuedAt: isoTime,
});
export type OfflineBinding = z.infer<typeof offlineBindingSchema>;

export const offlineActivationResponseSchema = z.strictObject({
  format: z.literal(OFFLINE_RESPONSE_FORMAT),
  binding: z.strictObject({ payload: offlineBindingSchema, signature: signatureSchema }),
  activation: activateResponseSchema,
});
export type OfflineActivationResponse = z.infer<typeof offlineActivationResponseSchema>;

export const statusFileSchema = z.strictObject({
  format: z.literal(STATUS_FILE_FORMAT),
  status: signedStatusSchema,
  /** serverTime + graceDays days: informative (the signed status decides). */
  validUntil: isoTime,
});
export type StatusFile = z.infer<typeof statusFileSchema>;

/** The digest a response binds: sha256 over the request's canonical JSON. */
export function offlineRequestDigest(request: OfflineActivationRequest): string {
  return createHash('sha256').update(canonicalJson(request)).digest('hex');
}

/** The end of a status file's window: its signed server time plus its graceDays. */
export function statusFileValidUntil(payload: { serverTime: string; graceDays: number }): Date {
  return new Date(Date.parse(payload.serverTime) + payload.graceDays * 86_400_000);
}
