/**
 * The licenseLifecycle's rules as pure functions (unit-tested without Temporal): what state the
 * dates say, when the timers fire next, and which changes each state accepts.
 */
import type { LicenseTransitionInput } from '../activities/license-activities';
import type { Actor } from '../protocol/audit-chain';
import { DAY_MS, datedState, graceEndMs, termEndMs, type DatedState } from '../protocol/license-terms';
import type { LicenseState } from '../protocol/schemas';
import {
  INVALID_ARGUMENT,
  INVALID_TRANSITION,
  type ConvertTrialArgs,
  type LicenseLifecycleInput,
  type LicenseSnapshot,
  type RenewArgs,
  type ResumeArgs,
  type RevokeArgs,
  type SuspendArgs,
  type ChangeTermsArgs,
} from './license-contract';

export { DAY_MS };
const MAX_TIME_MS = Date.UTC(9999, 0, 1);
const ACTOR_KINDS: readonly string[] = ['admin', 'customer', 'system', 'agent', 'workflow'];

export type Terms = Pick<LicenseSnapshot, 'expiresAt' | 'trialEndsAt' | 'graceDays' | 'trialEndState'>;
export type TimedState = DatedState;
export type Refusal = { type: typeof INVALID_TRANSITION | typeof INVALID_ARGUMENT; message: string };

const ms = (iso: string): number => Date.parse(iso);

/** The state the timers say is right at `now` (ignoring suspension and revocation). */
export function scheduledState(terms: Terms, now: number): TimedState {
  return datedState(terms, now);
}

/** When the timers next change the state of a license in `state`, or null. */
export function nextDeadline(state: LicenseState, terms: Terms): number | null {
  switch (state) {
    case 'trial':
    case 'active':
      return termEndMs(terms);
    case 'grace':
      return graceEndMs(terms);
    default:
      return null; // expired waits for a renewal; suspended and revoked wait for an update
  }
}

/** `license.expiring_soon` notices, in days before expiry, when the input names none. */
export const DEFAULT_EXPIRY_NOTICE_DAYS: readonly number[] = [30, 7, 1];
/** The last notice a lifecycle gave: for which expiry, and how many days before it. */
export type ExpiryNoticeSent = { expiresAt: string; daysBefore: number };

/**
 * Which expiry notice is due now (the nearest one whose time has come, so a license renewed to
 * expire in 5 days gets the 7-day notice, not the 30-day one too), and when the next falls due.
 * Only trial and active licenses get notices; a new expiry date re-arms all of them.
 */
export function expiryNotice(
  state: LicenseState,
  expiresAt: string,
  now: number,
  days: readonly number[],
  sent: ExpiryNoticeSent | null,
): { due: number | null; nextAt: number | null } {
  const exp = ms(expiresAt);
  if ((state !== 'trial' && state !== 'active') || !(exp > now)) return { due: null, nextAt: null };
  const open = days.filter((d) => !(sent && sent.expiresAt === expiresAt && d >= sent.daysBefore));
  const due = open.filter((d) => exp - d * DAY_MS <= now);
  const later = open.map((d) => exp - d * DAY_MS).filter((at) => at > now);
  return {
    due: due.length ? Math.min(...due) : null,
    nextAt: later.length ? Math.min(...later) : null,
  };
}

/** The audit action of a timer-driven move. */
export function timerAction(to: TimedState): LicenseTransitionInput['action'] {
  return to === 'grace' ? 'license.grace_started' : 'license.expired';
}

function checkActor(actor: unknown): Refusal | null {
  const a = actor as Actor | undefined;
  if (
    !a ||
    typeof a !== 'object' ||
    !ACTOR_KINDS.includes(a.kind) ||
    typeof a.id !== 'string' ||
    a.id.length < 1 ||
    a.id.length > 200
  ) {
    return { type: INVALID_ARGUMENT, message: 'The acting principal is missing or malformed.' };
  }
  return null;
}

function checkFutureTime(iso: unknown, now: number, what: string): Refusal | null {
  if (typeof iso !== 'string' || iso.length > 40 || !Number.isFinite(ms(iso)))
    return { type: INVALID_ARGUMENT, message: `${what} must be an ISO 8601 time.` };
  const t = ms(iso);
  if (t <= now) return { type: INVALID_ARGUMENT, message: `${what} must be in the future.` };
  if (t >= MAX_TIME_MS) return { type: INVALID_ARGUMENT, message: `${what} is too far in the future.` };
  return null;
}

function checkReason(reason: unknown): Refusal | null {
  if (typeof reason !== 'string' || reason.trim().length < 1 || reason.length > 500)
    return { type: INVALID_ARGUMENT, message: 'A reason of 1 to 500 characters is required.' };
  return null;
}

const refuse = (message: string): Refusal => ({ type: INVALID_TRANSITION, message });

export function checkRenew(s: LicenseSnapshot, args: RenewArgs, now: number): Refusal | null {
  const bad = checkActor(args?.actor) ?? checkFutureTime(args?.expiresAt, now, 'expiresAt');
  if (bad) return bad;
  if (s.state === 'revoked') return refuse(`License ${s.licenseId} is revoked; a revoked license cannot be renewed.`);
  if (s.trialEndsAt !== null)
    return refuse(`License ${s.licenseId} is an unconverted trial; convert the trial instead of renewing it.`);
  if (ms(args.expiresAt) <= ms(s.expiresAt))
    return { type: INVALID_ARGUMENT, message: `expiresAt must be later than the current expiry (${s.expiresAt}).` };
  return null;
}

export function checkConvertTrial(s: LicenseSnapshot, args: ConvertTrialArgs, now: number): Refusal | null {
  const bad = checkActor(args?.actor) ?? checkFutureTime(args?.expiresAt, now, 'expiresAt');
  if (bad) return bad;
  if (s.state === 'revoked') return refuse(`License ${s.licenseId} is revoked; it cannot be converted.`);
  if (s.trialEndsAt === null) return refuse(`License ${s.licenseId} is not a trial.`);
  return null;
}

export function checkSuspend(s: LicenseSnapshot, args: SuspendArgs): Refusal | null {
  const bad = checkActor(args?.actor) ?? checkReason(args?.reason);
  if (bad) return bad;
  if (s.state === 'suspended') return refuse(`License ${s.licenseId} is already suspended.`);
  if (s.state !== 'trial' && s.state !== 'active' && s.state !== 'grace')
    return refuse(`License ${s.licenseId} is ${s.state}; only a trial, active or grace license can be suspended.`);
  return null;
}

export function checkResume(s: LicenseSnapshot, args: ResumeArgs): Refusal | null {
  const bad = checkActor(args?.actor);
  if (bad) return bad;
  if (s.state !== 'suspended')
    return refuse(`License ${s.licenseId} is ${s.state}, not suspended; there is nothing to resume.`);
  return null;
}

export function checkRevoke(s: LicenseSnapshot, args: RevokeArgs): Refusal | null {
  const bad = checkActor(args?.actor) ?? checkReason(args?.reason);
  if (bad) return bad;
  if (s.state === 'revoked') return refuse(`License ${s.licenseId} is already revoked.`);
  return null;
}

const FEATURE_NAME = /^[a-z][a-z0-9_.-]{0,63}$/;
const isInt = (v: unknown, min: number, max: number): boolean =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** The shape of a change of terms (the API's schema says the same; an Update sent by hand may not). */
function checkTermsShape(t: unknown): Refusal | null {
  const bad = (message: string): Refusal => ({ type: INVALID_ARGUMENT, message });
  if (!t || typeof t !== 'object' || Array.isArray(t)) return bad('terms must be an object.');
  const terms = t as Record<string, unknown>;
  const known = ['plan', 'features', 'maxAgents', 'graceDays', 'policy'];
  const unknown = Object.keys(terms).filter((k) => !known.includes(k));
  if (unknown.length) return bad(`Unknown term(s): ${unknown.slice(0, 5).join(', ').slice(0, 200)}.`);
  if (!['plan', 'features', 'maxAgents', 'graceDays'].some((k) => terms[k] !== undefined))
    return bad('Give at least one of plan, features, maxAgents and graceDays.');
  if (
    terms.plan !== undefined &&
    (typeof terms.plan !== 'string' || terms.plan.trim().length < 1 || terms.plan.length > 100)
  )
    return bad('plan must be 1 to 100 characters.');
  if (terms.maxAgents !== undefined && !isInt(terms.maxAgents, 1, 100000))
    return bad('maxAgents must be a whole number from 1 to 100000.');
  if (terms.graceDays !== undefined && !isInt(terms.graceDays, 0, 365))
    return bad('graceDays must be a whole number from 0 to 365.');
  if (terms.features !== undefined) {
    const f = terms.features;
    if (!f || typeof f !== 'object' || Array.isArray(f)) return bad('features must be an object.');
    const entries = Object.entries(f as Record<string, unknown>);
    if (entries.length > 100) return bad('At most 100 features.');
    for (const [k, v] of entries) {
      if (!FEATURE_NAME.test(k))
        return bad('A feature name must be 1-64 characters of [a-z0-9_.-], starting with a letter.');
      const ok =
        typeof v === 'boolean' ||
        (typeof v === 'number' && Number.isFinite(v)) ||
        (typeof v === 'string' && v.length <= 200);
      if (!ok) return bad(`Feature ${k} must be a boolean, a finite number or a string of at most 200 characters.`);
    }
  }
  if (terms.policy !== undefined) {
    const p = (terms.policy ?? {}) as { id?: unknown; version?: unknown };
    if (
      typeof p !== 'object' ||
      typeof p.id !== 'string' ||
      !/^pol_[A-Za-z0-9_-]{16,64}$/.test(p.id) ||
      !isInt(p.version, 1, 2 ** 31 - 1)
    )
      return bad('policy must name a policy id and version.');
  }
  return null;
}

export function checkChangeTerms(s: LicenseSnapshot, args: ChangeTermsArgs): Refusal | null {
  const bad = checkActor(args?.actor) ?? checkTermsShape(args?.terms);
  if (bad) return bad;
  if (s.state === 'revoked') return refuse(`License ${s.licenseId} is revoked; its terms cannot be changed.`);
  return null;
}

/** The initial snapshot of a license created with `input` at `now`. */
export function initialSnapshot(input: LicenseLifecycleInput, now: number): LicenseSnapshot {
  const terms: Terms = {
    expiresAt: input.expiresAt,
    trialEndsAt: input.trialEndsAt,
    graceDays: input.graceDays,
    trialEndState: input.trialEndState,
  };
  return {
    licenseId: input.licenseId,
    customerId: input.customerId,
    state: input.trialEndsAt !== null ? 'trial' : 'active',
    version: 1,
    ...terms,
    reason: null,
    changedAt: new Date(now).toISOString(),
    nextTransitionAt: null,
  };
}
