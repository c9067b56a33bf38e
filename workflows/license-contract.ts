/**
 * The licenseLifecycle contract the API shares with the workflow: its type, id, input, snapshot,
 * search attributes, updates, query and the failure types the API maps to HTTP.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Actor } from '../protocol/audit-chain';

export const LICENSE_WORKFLOW_TYPE = 'licenseLifecycle';
export function licenseWorkflowId(licenseId: string): string {
  return `license/${licenseId}`;
}

export const LicenseIdAttribute = defineSearchAttributeKey('LicenseId', SearchAttributeType.KEYWORD);
export const CustomerIdAttribute = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
export const LicenseStateAttribute = defineSearchAttributeKey('LicenseState', SearchAttributeType.KEYWORD);

import type { TrialEndState } from '../protocol/license-terms';
import type { LicenseSnapshotView } from '../protocol/views';

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
  /** How long a timer transition the database refused waits before its next try (REFUSED_TIMER_RETRY_MS); lowered by tests. */
  refusedTimerRetryMs?: number;
  /** Days before expiry at which `license.expiring_soon` is announced (LICENSE_EXPIRY_NOTICE_DAYS); [30, 7, 1] when absent. */
  expiryNoticeDays?: number[];
  /** The last expiry notice given, carried across continue-as-new. */
  expiryNoticeSent?: { expiresAt: string; daysBefore: number } | null;
};

/** What the query answers and every update returns (protocol/views.ts: the API shows it as is). */
export type LicenseSnapshot = LicenseSnapshotView;

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
/**
 * A change of terms: only the fields given change (`features` replaces the whole map). `policy`
 * records the policy version the terms came from ("apply policy"); absent for a hand edit.
 */
export type TermsChange = {
  plan?: string;
  features?: Record<string, boolean | number | string>;
  maxAgents?: number;
  graceDays?: number;
  policy?: { id: string; version: number };
};
export type ChangeTermsArgs = { terms: TermsChange; actor: Actor; origin?: UpdateOrigin };

export const renewUpdate = defineUpdate<LicenseSnapshot, [RenewArgs]>('renew');
export const convertTrialUpdate = defineUpdate<LicenseSnapshot, [ConvertTrialArgs]>('convertTrial');
export const suspendUpdate = defineUpdate<LicenseSnapshot, [SuspendArgs]>('suspend');
export const resumeUpdate = defineUpdate<LicenseSnapshot, [ResumeArgs]>('resume');
export const revokeUpdate = defineUpdate<LicenseSnapshot, [RevokeArgs]>('revoke');
export const changeTermsUpdate = defineUpdate<LicenseSnapshot, [ChangeTermsArgs]>('changeTerms');
export const licenseStateQuery = defineQuery<LicenseSnapshot>('licenseState');

/** ApplicationFailure types the API maps to HTTP: InvalidTransition → 409, InvalidArgument → 400. */
export const INVALID_TRANSITION = 'InvalidTransition';
export const INVALID_ARGUMENT = 'InvalidArgument';
/**
 * A transition PostgreSQL refused for a reason no retry can fix (non-retryable, from the activity):
 * its data cannot be stored (SQLSTATE class 22, e.g. a NUL character) → 400, or it breaks a
 * constraint (class 23) → 409. The update fails; the lifecycle goes on.
 */
export const TRANSITION_INVALID_DATA = 'TransitionInvalidData';
export const TRANSITION_CONSTRAINT_VIOLATION = 'TransitionConstraintViolation';
export const TRANSITION_REFUSALS: readonly string[] = [TRANSITION_INVALID_DATA, TRANSITION_CONSTRAINT_VIOLATION];
/** The transition activity's failure for an Update the API did not sign (API → 503: keys differ or too late). */
export const UPDATE_REFUSED = 'UpdateRefused';
/**
 * The transition activity's refusals of a change of terms, judged against the row in the same
 * transaction: maxAgents below the seated agents (API → 409), or nothing that would change (→ 400).
 */
export const TERMS_SEATS_IN_USE = 'TermsSeatsInUse';
export const TERMS_UNCHANGED = 'TermsUnchanged';
