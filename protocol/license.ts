import { z } from 'zod';
import { safeString } from './input';
import { agentId, customerId, hex64, isoTime, licenseId, signatureSchema } from './schemas';
import type { KeySet, Signer, VerifyResult } from './signer';
import { verifySignature } from './signer';

/**
 * The signed license document. Every string is bounded and unknown fields are rejected, so a
 * document cannot smuggle data past a verifier. `agentId` and `fingerprintCommitment` are set
 * once the license is bound to an agent at activation.
 */
export const featureValue = z.union([z.boolean(), z.number().finite(), z.string().max(200)]);
const FEATURE_NAME = /^[a-z][a-z0-9_.-]{0,63}$/;
export const MAX_FEATURES = 100;
export const featuresSchema = z
  .record(z.string().regex(FEATURE_NAME), featureValue)
  .refine((f) => Object.keys(f).length <= MAX_FEATURES, `at most ${MAX_FEATURES} features`);
/** Features as a request gives them: the same shape, every string by safeString. */
export const featuresInputSchema = z
  .record(safeString(64).regex(FEATURE_NAME), z.union([z.boolean(), z.number().finite(), safeString(200)]))
  .refine((f) => Object.keys(f).length <= MAX_FEATURES, `at most ${MAX_FEATURES} features`);

export const licenseDocumentSchema = z.strictObject({
  kind: z.literal('agentina.license/v1'),
  licenseId,
  customerId,
  plan: z.string().min(1).max(100),
  features: featuresSchema,
  maxAgents: z.number().int().min(1).max(100000),
  notBefore: isoTime,
  expiresAt: isoTime,
  graceDays: z.number().int().min(0).max(365),
  issuedAt: isoTime,
  version: z.number().int().min(1),
  agentId: agentId.optional(),
  fingerprintCommitment: hex64.optional(),
});
export type LicenseDocument = z.infer<typeof licenseDocumentSchema>;

export const signedLicenseSchema = z.strictObject({ document: licenseDocumentSchema, signature: signatureSchema });
export type SignedLicense = z.infer<typeof signedLicenseSchema>;

export function signLicense(signer: Signer, document: LicenseDocument): SignedLicense {
  const parsed = licenseDocumentSchema.parse(document);
  return { document: parsed, signature: signer.sign(parsed) };
}

export type LicenseVerifyResult =
  | { ok: true; document: LicenseDocument }
  | { ok: false; code: 'MALFORMED' | Exclude<VerifyResult, { ok: true }>['code'] };

/** Schema first (unknown fields rejected), then the signature against the key set. */
export function verifySignedLicense(input: unknown, keys: KeySet): LicenseVerifyResult {
  const parsed = signedLicenseSchema.safeParse(input);
  if (!parsed.success) return { ok: false, code: 'MALFORMED' };
  const v = verifySignature(parsed.data.document, parsed.data.signature, keys);
  return v.ok ? { ok: true, document: parsed.data.document } : { ok: false, code: v.code };
}
