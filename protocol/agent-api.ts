import { z } from 'zod';
import { TASK_KINDS } from './enums';

export { TASK_KINDS };
import { fingerprintHashesSchema, fingerprintSaltSchema, FINGERPRINT_COMPONENTS } from './fingerprint';
import { batchableSignatureSchema } from './batch-signature';
import { signedLicenseSchema } from './license';
import { jsonValue, safeString } from './input';
import {
  agentId,
  AGENT_STATUSES,
  boundedText,
  hex64,
  isoTime,
  LICENSE_STATES,
  licenseId,
  signatureSchema,
  taskId,
} from './schemas';

/**
 * The wire contract between the control plane and the agent (`/v1/agent/*`). Both sides parse
 * with these schemas; the agent authenticates with `Authorization: Bearer agc_…` after activation.
 */

export const releaseVersionSchema = safeString(80).regex(/^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]{1,40})?$/);

// ---- activation: POST /v1/agent/activate (no auth header; the act_ token is the credential)
export const activationTokenSchema = safeString(80).regex(/^act_[A-Za-z0-9_-]{22,64}$/, 'must be an act_ token');
export const agentCredentialSchema = safeString(80).regex(/^agc_[A-Za-z0-9_-]{22,64}$/, 'must be an agc_ credential');

export const activateRequestSchema = z.strictObject({
  token: activationTokenSchema,
  /** The agent's Ed25519 public key (SPKI PEM). */
  publicKey: safeString(1000, { multiline: true }).min(40),
  fingerprint: z.strictObject({ salt: fingerprintSaltSchema, components: fingerprintHashesSchema }),
  agentVersion: releaseVersionSchema,
  hostnameHint: safeString(255).optional(),
});
export type ActivateRequest = z.infer<typeof activateRequestSchema>;

// ---- the signed status answer (status long-poll, heartbeat answers, activation)
export const statusPayloadSchema = z.strictObject({
  kind: z.literal('agentina.status/v1'),
  licenseId,
  agentId,
  licenseState: z.enum(LICENSE_STATES),
  agentStatus: z.enum(AGENT_STATUSES),
  /** True only when the license is trial/active/grace and the agent is active (or offline). */
  good: z.boolean(),
  /** licenses.version + agents.status_version: rises with every change that concerns this agent. */
  version: z.number().int().min(0),
  serverTime: isoTime,
  expiresAt: isoTime,
  graceDays: z.number().int().min(0).max(365),
  reason: boundedText(500).optional(),
});
export type StatusPayload = z.infer<typeof statusPayloadSchema>;
/** Signed alone, or (the long-poll, when the agent asks for it) in a batch: protocol/batch-signature.ts. */
export const signedStatusSchema = z.strictObject({ payload: statusPayloadSchema, signature: batchableSignatureSchema });
export type SignedStatus = z.infer<typeof signedStatusSchema>;

export const activateResponseSchema = z.strictObject({
  agentId,
  /** Shown once; the control plane stores only its sha256. */
  credential: agentCredentialSchema,
  license: signedLicenseSchema,
  status: signedStatusSchema,
  heartbeatIntervalS: z.number().int().min(5).max(3600),
});
export type ActivateResponse = z.infer<typeof activateResponseSchema>;

// ---- GET /v1/agent/status?since=<version>&wait=<seconds>
export const statusQuerySchema = z.strictObject({
  since: z.coerce.number().int().min(0).optional(),
  wait: z.coerce.number().int().min(0).max(30).optional(),
  /** The version of the license document the agent holds: a newer one comes with the answer. */
  license: z.coerce.number().int().min(1).optional(),
  /** `batch`: the agent verifies batch signatures, so a change waking many agents is signed once. */
  signatures: z.literal('batch').optional(),
});
export const statusResponseSchema = z.strictObject({
  status: signedStatusSchema,
  changed: z.boolean(),
  /** The re-issued license document (a renewal, a terms change), bound to this agent: sent when
   * its version is above the `license` the agent said it holds. */
  license: signedLicenseSchema.optional(),
});
export type StatusResponse = z.infer<typeof statusResponseSchema>;

// ---- POST /v1/agent/heartbeat
/** Why an agent's last update check refused what the distribution origin offered. */
export const UPDATE_REFUSALS = [
  'frozen',
  'rollback',
  'signature',
  'untrusted',
  'mixed',
  'tampered',
  'too_large',
  'downgrade',
  'bad_release',
  'unavailable',
  'unreachable',
] as const;
export type UpdateRefusal = (typeof UPDATE_REFUSALS)[number];
/** The agent's last update check, reported with each heartbeat (a frozen repository shows here). */
export const updateReportSchema = z.strictObject({
  outcome: z.enum(['current', 'installed', 'refused']),
  reason: z.enum(UPDATE_REFUSALS).optional(),
  at: isoTime,
});
export type UpdateReport = z.infer<typeof updateReportSchema>;
export const heartbeatRequestSchema = z.strictObject({
  agentVersion: releaseVersionSchema,
  /** SHA-256 over the runtime files' manifest (agent/integrity). */
  runtimeHash: hex64,
  fingerprint: fingerprintHashesSchema,
  score: z.number().int().min(0).max(100),
  changedComponents: z.array(z.enum(FINGERPRINT_COMPONENTS)).max(FINGERPRINT_COMPONENTS.length),
  inFlightTasks: z.number().int().min(0).max(10000),
  /** The version of the license document the agent holds: a newer one comes with the answer. */
  licenseVersion: z.number().int().min(1).optional(),
  /** The version of the signed status the agent last accepted (absent before its first). */
  statusVersion: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /** Set when the agent has gone terminal: why (journaled reason code). */
  terminalReason: safeString(200).optional(),
  /** The last update check (absent when the agent does not update itself). */
  update: updateReportSchema.optional(),
  /** The generation of the credential this request is made with: an agent that sends it rotates
   * its credential at every heartbeat (the answer's `nextCredential`). */
  credentialGeneration: z.number().int().min(0).max(0xffff_ffff).optional(),
});
export type HeartbeatRequest = z.infer<typeof heartbeatRequestSchema>;
export const heartbeatResponseSchema = z.strictObject({
  status: signedStatusSchema,
  heartbeatIntervalS: z.number().int().min(5).max(3600),
  /** As in the status answer: the re-issued document when it is newer than `licenseVersion`. */
  license: signedLicenseSchema.optional(),
  /** Sent only to agents that report an update check (`update` in the request), which read it:
   * the license's update policy (`manual`: install only a wanted version) and the release an
   * admin asked this agent to install. The updater still verifies it through TUF and refuses a
   * downgrade, so this only chooses among signed releases. */
  update: z
    .strictObject({ policy: z.enum(['automatic', 'manual']), wanted: releaseVersionSchema.optional() })
    .optional(),
  /** Sent only to agents that send `credentialGeneration`: the credential's next generation. The
   * agent writes it to its state before it uses it and then uses it for every request; until its
   * first use the one this heartbeat was made with still works (a repeated heartbeat is issued
   * another next generation; the first one used wins), so a lost answer costs nothing. Once it has been
   * used, the older one is superseded: presenting it is how a clone is detected. */
  nextCredential: z
    .strictObject({ credential: agentCredentialSchema, generation: z.number().int().min(1).max(0xffff_ffff) })
    .optional(),
});
export type HeartbeatResponse = z.infer<typeof heartbeatResponseSchema>;

// ---- tasks: GET /v1/agent/tasks/next?wait=<s>, POST /v1/agent/tasks/:id/result
export const agentTaskSchema = z.strictObject({
  id: taskId,
  kind: z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/),
  payload: z.record(z.string().max(100), z.unknown()),
  leaseExpiresAt: isoTime,
});
export type AgentTask = z.infer<typeof agentTaskSchema>;
export const nextTaskQuerySchema = z.strictObject({ wait: z.coerce.number().int().min(0).max(30).optional() });
export const nextTaskResponseSchema = z.strictObject({ task: agentTaskSchema.nullable() });
export const taskResultRequestSchema = z.strictObject({
  outcome: z.enum(['succeeded', 'failed', 'interrupted', 'rejected']),
  result: jsonValue.optional(),
  error: safeString(2000, { multiline: true }).optional(),
});
export type TaskResultRequest = z.infer<typeof taskResultRequestSchema>;
export const taskResultResponseSchema = z.strictObject({
  id: taskId,
  state: z.enum(['succeeded', 'failed', 'interrupted', 'rejected']),
});
export type TaskResultResponse = z.infer<typeof taskResultResponseSchema>;

// ---- POST /v1/agent/deregister (no body): frees the license seat; the credential stops working
export const deregisterResponseSchema = z.strictObject({ agentId, status: z.literal('deregistered') });
export type DeregisterResponse = z.infer<typeof deregisterResponseSchema>;

// ---- GET /v1/agent/revocations?since=<cursor>
export const revocationsQuerySchema = z.strictObject({
  since: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});
export const revocationItemSchema = z.strictObject({
  cursor: z.number().int().min(1),
  licenseId,
  agentId: agentId.optional(),
  state: z.string().max(30),
  version: z.number().int().min(0),
  reason: boundedText(500).optional(),
  at: isoTime,
});
export const revocationsPayloadSchema = z.strictObject({
  kind: z.literal('agentina.revocations/v1'),
  items: z.array(revocationItemSchema),
  nextCursor: z.number().int().min(0),
  serverTime: isoTime,
});
export const signedRevocationsSchema = z.strictObject({
  payload: revocationsPayloadSchema,
  signature: signatureSchema,
});
export type SignedRevocations = z.infer<typeof signedRevocationsSchema>;

// ---- GET /v1/agent/releases/latest: a signed release manifest
export const releaseFileSchema = z.strictObject({
  path: safeString(300).min(1),
  sha256: hex64,
  size: z.number().int().min(0),
});
export const releaseManifestSchema = z.strictObject({
  kind: z.literal('agentina.release/v1'),
  version: releaseVersionSchema,
  files: z.array(releaseFileSchema).max(10000),
  /** sha256 over the canonical JSON of `files`: what heartbeats report as runtimeHash. */
  runtimeHash: hex64,
  createdAt: isoTime,
});
export type ReleaseManifest = z.infer<typeof releaseManifestSchema>;
export const signedReleaseManifestSchema = z.strictObject({
  manifest: releaseManifestSchema,
  signature: signatureSchema,
});
export type SignedReleaseManifest = z.infer<typeof signedReleaseManifestSchema>;
