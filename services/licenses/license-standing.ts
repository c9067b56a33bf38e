import { GOOD_LICENSE_STATES, licenseStateAt, type TrialEndState } from '../../protocol';

/** The columns of a license row that decide, with its state, whether it is good now. */
export type DatedLicenseRow = {
  expires_at: Date;
  trial_ends_at: Date | null;
  grace_days: number;
  trial_end_state: TrialEndState;
};

export type LicenseStanding = {
  /** The state the license is in now: the row's, or worse when its dates have run out. */
  state: string;
  good: boolean;
  /** The dates decided: the lifecycle has not yet moved the row to `state`. */
  overdue: boolean;
};

/**
 * Whether a license is good at `now`, judged from its row's state AND its dates, so a stopped or
 * lagging worker (the only writer of `licenses.state`) never extends a license. Activation, task
 * leases, task results and status answers all ask this.
 */
export function licenseStandingAt(state: string, row: DatedLicenseRow, now: Date): LicenseStanding {
  const terms = {
    expiresAt: row.expires_at,
    trialEndsAt: row.trial_ends_at,
    graceDays: row.grace_days,
    trialEndState: row.trial_end_state,
  };
  const at = licenseStateAt(state, terms, now.getTime());
  return { state: at, good: (GOOD_LICENSE_STATES as readonly string[]).includes(at), overdue: at !== state };
}
