/**
 * What every enforcement check returns. Expected outcomes are values: a failing check names a
 * stable code (journaled and reported to the control plane) and a short human detail.
 */
export const CHECK_NAMES = ['license', 'fingerprint', 'status', 'grace'] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

export type CheckResult = { ok: true } | { ok: false; code: string; detail: string };

export type Check = {
  readonly name: CheckName;
  /** Judges the check's own state at `now`; never consults another check. */
  evaluate(now: Date): Promise<CheckResult>;
};

export const pass: CheckResult = { ok: true };
export const fail = (code: string, detail: string): CheckResult => ({ ok: false, code, detail });
