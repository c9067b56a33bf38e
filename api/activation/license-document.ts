import { signLicense, type LicenseDocument, type SignedLicense, type Signer } from '../../protocol';
import type { ActivationLicenseRow } from '../../db/agents-repo';

/**
 * The license document bound to one activated agent: the license's terms at its current version
 * plus the agent id and the commitment to the fingerprint it activated with.
 */
export function signBoundLicense(signer: Signer, l: ActivationLicenseRow, binding: { agentId: string; fingerprintCommitment: string }, issuedAt: Date): SignedLicense {
  const document: LicenseDocument = {
    kind: 'agentina.license/v1',
    licenseId: l.id,
    customerId: l.customer_id,
    plan: l.plan,
    features: l.features as LicenseDocument['features'],
    maxAgents: l.max_agents,
    notBefore: l.not_before.toISOString(),
    expiresAt: l.expires_at.toISOString(),
    graceDays: l.grace_days,
    issuedAt: issuedAt.toISOString(),
    version: l.version,
    agentId: binding.agentId,
    fingerprintCommitment: binding.fingerprintCommitment,
  };
  return signLicense(signer, document);
}
