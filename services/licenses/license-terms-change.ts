import type { LicenseRow } from '../../db/licenses-repo';
import { canonicalJson } from '../../protocol';
import { TERMS_SEATS_IN_USE, TERMS_UNCHANGED, type TermsChange } from '../../workflows/license-contract';

/** The terms a change may touch, as the audit and the row write carry them. */
export type TermsValues = {
  plan?: string;
  features?: Record<string, boolean | number | string>;
  maxAgents?: number;
  graceDays?: number;
  policy?: { id: string; version: number } | null;
};

/**
 * The fields of `change` that differ from the row: their old values (`before`) and new ones
 * (`after`), or null when nothing would change.
 */
export function diffTerms(row: LicenseRow, change: TermsChange): { before: TermsValues; after: TermsValues } | null {
  const before: TermsValues = {};
  const after: TermsValues = {};
  if (change.plan !== undefined && change.plan !== row.plan) {
    before.plan = row.plan;
    after.plan = change.plan;
  }
  if (change.features !== undefined && canonicalJson(change.features) !== canonicalJson(row.features)) {
    before.features = row.features;
    after.features = change.features;
  }
  if (change.maxAgents !== undefined && change.maxAgents !== row.max_agents) {
    before.maxAgents = row.max_agents;
    after.maxAgents = change.maxAgents;
  }
  if (change.graceDays !== undefined && change.graceDays !== row.grace_days) {
    before.graceDays = row.grace_days;
    after.graceDays = change.graceDays;
  }
  if (
    change.policy !== undefined &&
    (change.policy.id !== row.policy_id || change.policy.version !== row.policy_version)
  ) {
    before.policy = row.policy_id === null ? null : { id: row.policy_id, version: row.policy_version! };
    after.policy = change.policy;
  }
  return Object.keys(after).length ? { before, after } : null;
}

/** A change of terms the row refuses; the lifecycle's Update fails with it and nothing is written. */
export class TermsRefused extends Error {
  constructor(
    readonly why: 'unchanged' | 'seats',
    message: string,
  ) {
    super(message);
    this.name = 'TermsRefused';
  }
  /** The lifecycle's failure type for it (workflows/license-contract.ts). */
  get failureType(): string {
    return this.why === 'seats' ? TERMS_SEATS_IN_USE : TERMS_UNCHANGED;
  }
}
