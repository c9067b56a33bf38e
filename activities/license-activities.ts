import { ApplicationFailure } from '@temporalio/common';
import {
  LicenseNotFound,
  TransitionNotStorable,
  UPDATE_REFUSED,
  UpdateRefused,
  type ExpiringSoonInput,
  type LicenseTransitionInput,
  type LicenseTransitionResult,
} from '../services/licenses/license-transitions';
import { TermsRefused } from '../services/licenses/license-terms-change';
import type { ActivityServices } from './create-activities';

export type { ExpiringSoonInput, LicenseTransitionInput, LicenseTransitionResult };
export { transitionKey } from '../services/licenses/license-transitions';

export function createLicenseActivities(services: Pick<ActivityServices, 'transitions'>) {
  return {
    /** One license transition in one transaction (services/licenses/license-transitions.ts). */
    async applyLicenseTransition(input: LicenseTransitionInput): Promise<LicenseTransitionResult> {
      try {
        return await services.transitions.apply(input);
      } catch (err) {
        if (err instanceof LicenseNotFound) throw ApplicationFailure.nonRetryable(err.message, 'LICENSE_NOT_FOUND');
        // Retrying would only keep the lifecycle busy, and every later change waiting behind it.
        if (err instanceof TransitionNotStorable)
          throw ApplicationFailure.nonRetryable(err.message, err.failureType, { sqlState: err.sqlState });
        // The Update fails with this message; the workflow goes on unchanged.
        if (err instanceof UpdateRefused) throw ApplicationFailure.nonRetryable(err.message, UPDATE_REFUSED);
        if (err instanceof TermsRefused) throw ApplicationFailure.nonRetryable(err.message, err.failureType);
        throw err;
      }
    },
    /** A `license.expiring_soon` notice (audit row, so a webhook event); idempotent per expiry and notice. */
    announceLicenseExpiringSoon: (input: ExpiringSoonInput): Promise<void> =>
      services.transitions.announceExpiringSoon(input),
  };
}

export type LicenseActivities = ReturnType<typeof createLicenseActivities>;
