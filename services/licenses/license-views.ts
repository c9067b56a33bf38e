import type { LicenseRow } from '../../db/licenses-repo';
import { effectiveGraceDays, graceEndMs, type LicenseDocument, type LicenseTerms } from '../../protocol';
import type { LicenseView } from '../../protocol/views';
import type { LicenseSnapshot } from '../../workflows/license-contract';

/** A row's terms, as the grace rule (protocol/license-terms.ts) reads them. */
export function termsOfRow(r: LicenseRow): LicenseTerms<Date> {
  return {
    expiresAt: r.expires_at,
    trialEndsAt: r.trial_ends_at,
    graceDays: r.grace_days,
    trialEndState: r.trial_end_state,
  };
}

export function toLicenseView(r: LicenseRow): LicenseView {
  const graceEnd = graceEndMs(termsOfRow(r));
  return {
    id: r.id,
    customerId: r.customer_id,
    plan: r.plan,
    features: r.features,
    maxAgents: r.max_agents,
    state: r.state,
    version: r.version,
    notBefore: r.not_before.toISOString(),
    expiresAt: r.expires_at.toISOString(),
    trialEndsAt: r.trial_ends_at?.toISOString() ?? null,
    trialEndState: r.trial_end_state,
    graceDays: r.grace_days,
    graceEndsAt: new Date(graceEnd).toISOString(),
    stateReason: r.state_reason,
    policyId: r.policy_id,
    policyVersion: r.policy_version,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  };
}

/** The row's view in the workflow's shape, for when the workflow does not answer. */
export function snapshotOfView(l: LicenseView): LicenseSnapshot {
  return {
    licenseId: l.id,
    customerId: l.customerId,
    state: l.state,
    version: l.version,
    expiresAt: l.expiresAt,
    trialEndsAt: l.trialEndsAt,
    graceDays: l.graceDays,
    trialEndState: l.trialEndState,
    reason: l.stateReason,
    changedAt: l.updatedAt,
    nextTransitionAt: null,
  };
}

/** Builds the unsigned license document for a row, optionally bound to one agent. */
export function licenseDocumentFor(
  r: LicenseRow,
  issuedAt: Date,
  binding?: { agentId: string; fingerprintCommitment: string },
): LicenseDocument {
  return {
    kind: 'agentina.license/v1',
    licenseId: r.id,
    customerId: r.customer_id,
    plan: r.plan,
    features: r.features,
    maxAgents: r.max_agents,
    notBefore: r.not_before.toISOString(),
    expiresAt: (r.trial_ends_at ?? r.expires_at).toISOString(),
    graceDays: effectiveGraceDays(termsOfRow(r)),
    issuedAt: issuedAt.toISOString(),
    version: r.version,
    ...(binding ? { agentId: binding.agentId, fingerprintCommitment: binding.fingerprintCommitment } : {}),
  };
}
