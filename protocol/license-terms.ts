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

/** The states the dates alone can decide (suspension and revocation are decisions, not dates). */
export type DatedState = 'trial' | 'active' | 'grace' | 'expired';

/** The state the dates say is right at `nowMs`, ignoring suspension and revocation. */
export function datedState(terms: LicenseTerms<string | Date>, nowMs: number): DatedState {
  if (nowMs < termEndMs(terms)) return terms.trialEndsAt !== null ? 'trial' : 'active';
  return nowMs < graceEndMs(terms) ? 'grace' : 'expired';
}

const DATED_ORDER: Record<DatedState, number> = { trial: 0, active: 0, grace: 1, expired: 2 };

/**
 * The state a license is in at `nowMs`, judged by the control plane itself: the row's state, made
 * worse by its dates when the lifecycle has not caught up yet (its worker stopped or lagging). A
 * row never gets better than it says (a renewal moves the row and its dates together), and
 * suspended, revoked and expired rows stay so whatever the dates say.
 */
export function licenseStateAt<S extends string>(
  state: S,
  terms: LicenseTerms<string | Date>,
  nowMs: number,
): S | DatedState {
  const rowState: string = state;
  if (rowState !== 'trial' && rowState !== 'active' && rowState !== 'grace') return state;
  const dated = datedState(terms, nowMs);
  return DATED_ORDER[dated] > DATED_ORDER[rowState] ? dated : state;
}

/** Days an offline agent keeps its seat before the reclaim timer frees it (0: never); the licenses column's default too (migration 0096). */
export const DEFAULT_SEAT_RECLAIM_DAYS = 14;
