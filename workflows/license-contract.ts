/**
 * The licenseLifecycle contract the API shares with the workflow: its type, id, input, snapshot,
 * search attributes, updates, query and the failure types the API maps to HTTP.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Actor } from '../protocol/audit-chain';
import type { LicenseState } from '../protocol/schemas';

export const LICENSE_WORKFLOW_TYPE = 'licenseLifecycle';
export function licenseWorkflowId(licenseId: string): string {
  return `license/${licenseId}`;
}

export const LicenseIdAttribute = defineSearchAttributeKey('LicenseId', SearchAttributeType.KEYWORD);
export const CustomerIdAttribute = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
export const LicenseStateAttribute = defineSearchAttributeKey('LicenseState', SearchAttributeType.KEYWORD);

import type { TrialEndState } from '../protocol/license-terms';

export type { TrialEndState };

/** The one typed input: ids, dates and small numbers. */
export type LicenseLifecycleInput = {
  licenseId: string;
  customerId: string;
  /** ISO time the paid term ends (for a trial: equal to trialEndsAt). */
  expiresAt: string;
  /** ISO time the trial ends, or null when the license is not (or no longer) a trial. */
  trialEndsAt: string | null;
  graceDays: number;
  /** Where an unconverted trial goes when it ends. */
  trialEndState: TrialEndState;
  /** Carried across continue-as-new; absent on the first run. */
  carried?: LicenseSnapshot;
  /**
   * Continue-as-new once this run's history reaches this many events, besides whenever Temporal
   * suggests it. Lowered by tests to force it.
   */
  continueAsNewAtHistoryLength?: number;
  /** How many local tries a transition gets before the server retries it (LOCAL_TRANSITION_ATTEMPTS); lowered by tests. */
  localTransitionAttempts?: number;
};

/** What the query answers and every update returns. */
export type LicenseSnapshot = {
  licenseId: string;
  customerId: string;
  state: LicenseState;
  /** The license row's version: 1 at creation, +1 per transition. */
  version: number;
  expiresAt: string;
  trialEndsAt: string | null;
  graceDays: number;
  trialEndState: TrialEndState;
  reason: string | null;
  /** Workflow time of the last transition (creation for version 1). */
  changedAt: string;
  /** When the timers will next move the state, or null when nothing is scheduled. */
  nextTransitionAt: string | null;
};

/**
 * The API's proof that an Update came from it (services/licenses/update-origin.ts): an HMAC over
 * the workflow id, the Update's name, its other arguments, `issuedAt` and a single-use `nonce`.
 * The transition activity refuses (and audits) an Update without a valid one.
 */
export type UpdateOrigin = { kid: string; issuedAt: string; nonce: string; mac: string };

export type RenewArgs = { expiresAt: string; actor: Actor; origin?: UpdateOrigin };
export type ConvertTrialArgs = { expiresAt: string; actor: Actor; origin?: UpdateOrigin };
export type SuspendArgs = { reason: string; actor: Actor; origin?: UpdateOrigin };
export type ResumeArgs = { actor: Actor; origin?: UpdateOrigin };
export type RevokeArgs = { reason: string; actor: Actor; origin?: UpdateOrigin };

export const renewUpdate = defineUpdate<LicenseSnapshot, [RenewArgs]>('renew');
export const convertTrialUpdate = defineUpdate<LicenseSnapshot, [ConvertTrialArgs]>('convertTrial');
export const suspendUpdate = defineUpdate<LicenseSnapshot, [SuspendArgs]>('suspend');
export const resumeUpdate = defineUpdate<LicenseSnapshot, [ResumeArgs]>('resume');
export const revokeUpdate = defineUpdate<LicenseSnapshot, [RevokeArgs]>('revoke');
export const licenseStateQuery = defineQuery<LicenseSnapshot>('licenseState');

/** ApplicationFailure types the API maps to HTTP: InvalidTransition → 409, InvalidArgument → 400. */
export const INVALID_TRANSITION = 'InvalidTransition';
export const INVALID_ARGUMENT = 'InvalidArgument';
/** The transition activity's failure for an Update the API did not sign (API → 503: keys differ or too late). */
export const UPDATE_REFUSED = 'UpdateRefused';
