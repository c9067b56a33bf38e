/** License terms and the grace rule: pure, so workflows, services and the browser share it. */
export const DAY_MS = 24 * 60 * 60 * 1000;

/** How a trial ends: straight to expired, or into the license's grace period. */
export type TrialEndState = 'expired' | 'grace';

/** The dates that decide when a license stops being good (rows, workflow terms, documents). */
export type LicenseTerms<T = string> = {
  expiresAt: T;
  trialEndsAt: T | null;
  graceDays: number;
  trialEndState: TrialEndState;
};

/**
 * The one rule for grace: a trial that ends in `expired` has none; every other term has its
 * grace days after its end. The signed document, the status answer, the admin view and the
 * lifecycle's timers all take it from here.
 */
export function effectiveGraceDays(
  terms: Pick<LicenseTerms<unknown>, 'trialEndsAt' | 'graceDays' | 'trialEndState'>,
): number {
  return terms.trialEndsAt !== null && terms.trialEndState === 'expired' ? 0 : terms.graceDays;
}

/** When the term ends (the trial's end for a trial), in epoch milliseconds. */
export function termEndMs(terms: Pick<LicenseTerms<string | Date>, 'expiresAt' | 'trialEndsAt'>): number {
  const end = terms.trialEndsAt ?? terms.expiresAt;
  return typeof end === 'string' ? Date.parse(end) : end.getTime();
}

/** When grace ends and the license expires if nothing changes, in epoch milliseconds. */
export function graceEndMs(terms: LicenseTerms<string | Date>): number {
  return termEndMs(terms) + effectiveGraceDays(terms) * DAY_MS;
}
