/**
 * licenseLifecycle — one workflow per license, id `license/<licenseId>`.
 *
 *   trial ──► active ──► grace ──► expired        (timers; renewals move the deadlines)
 *   trial/active/grace ⇄ suspended                (resume returns to what the timers say now)
 *   any state but revoked ──► revoked             (terminal)
 *
 * Every change is one transition: one activity (local, see applyTransition) that writes the row
 * (version + 1), the audit row, the status feed row and the NOTIFY in one PostgreSQL
 * transaction. Transitions are serialized.
 * Payloads carry ids, dates and short reasons only: never keys or tokens.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  TemporalFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineUpdate,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { LicenseTransitionInput, LicenseTransitionResult } from '../activities/license-activities';
import type { Actor } from '../protocol/audit-chain';
import type { LicenseState } from '../protocol/schemas';

// ─── The contract with the API (the API imports these same definitions) ─────────────────────

export const LICENSE_WORKFLOW_TYPE = 'licenseLifecycle';
export const licenseWorkflowId = (licenseId: string): string => `license/${licenseId}`;

export const LicenseIdAttribute = defineSearchAttributeKey('LicenseId', SearchAttributeType.KEYWORD);
export const CustomerIdAttribute = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
export const LicenseStateAttribute = defineSearchAttributeKey('LicenseState', SearchAttributeType.KEYWORD);

export type TrialEndState = 'expired' | 'grace';

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

export type RenewArgs = { expiresAt: string; actor: Actor };
export type ConvertTrialArgs = { expiresAt: string; actor: Actor };
export type SuspendArgs = { reason: string; actor: Actor };
export type ResumeArgs = { actor: Actor };
export type RevokeArgs = { reason: string; actor: Actor };

export const renewUpdate = defineUpdate<LicenseSnapshot, [RenewArgs]>('renew');
export const convertTrialUpdate = defineUpdate<LicenseSnapshot, [ConvertTrialArgs]>('convertTrial');
export const suspendUpdate = defineUpdate<LicenseSnapshot, [SuspendArgs]>('suspend');
export const resumeUpdate = defineUpdate<LicenseSnapshot, [ResumeArgs]>('resume');
export const revokeUpdate = defineUpdate<LicenseSnapshot, [RevokeArgs]>('revoke');
export const licenseStateQuery = defineQuery<LicenseSnapshot>('licenseState');

/** ApplicationFailure types the API maps to HTTP: InvalidTransition → 409, InvalidArgument → 400. */
export const INVALID_TRANSITION = 'InvalidTransition';
export const INVALID_ARGUMENT = 'InvalidArgument';

// ─── Pure rules (unit-tested without Temporal) ──────────────────────────────────────────────

export const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_TIME_MS = Date.UTC(9999, 0, 1);
const ACTOR_KINDS: readonly string[] = ['admin', 'customer', 'system', 'agent', 'workflow'];

export type Terms = Pick<LicenseSnapshot, 'expiresAt' | 'trialEndsAt' | 'graceDays' | 'trialEndState'>;
export type TimedState = Extract<LicenseState, 'trial' | 'active' | 'grace' | 'expired'>;
export type Refusal = { type: typeof INVALID_TRANSITION | typeof INVALID_ARGUMENT; message: string };

const ms = (iso: string): number => Date.parse(iso);

/** The state the timers say is right at `now` (ignoring suspension and revocation). */
export function scheduledState(terms: Terms, now: number): TimedState {
  const graceMs = terms.graceDays * DAY_MS;
  if (terms.trialEndsAt !== null) {
    const end = ms(terms.trialEndsAt);
    if (now < end) return 'trial';
    if (terms.trialEndState === 'grace' && now < end + graceMs) return 'grace';
    return 'expired';
  }
  const end = ms(terms.expiresAt);
  if (now < end) return 'active';
  if (now < end + graceMs) return 'grace';
  return 'expired';
}

/** When the timers next change the state of a license in `state`, or null. */
export function nextDeadline(state: LicenseState, terms: Terms): number | null {
  const graceMs = terms.graceDays * DAY_MS;
  const end = ms(terms.trialEndsAt ?? terms.expiresAt);
  switch (state) {
    case 'trial':
    case 'active':
      return end;
    case 'grace':
      return end + graceMs;
    default:
      return null; // expired waits for a renewal; suspended and revoked wait for an update
  }
}

/** The audit action of a timer-driven move. */
export function timerAction(to: TimedState): LicenseTransitionInput['action'] {
  return to === 'grace' ? 'license.grace_started' : 'license.expired';
}

function checkActor(actor: unknown): Refusal | null {
  const a = actor as Actor | undefined;
  if (!a || typeof a !== 'object' || !ACTOR_KINDS.includes(a.kind) || typeof a.id !== 'string' || a.id.length < 1 || a.id.length > 200) {
    return { type: INVALID_ARGUMENT, message: 'The acting principal is missing or malformed.' };
  }
  return null;
}

function checkFutureTime(iso: unknown, now: number, what: string): Refusal | null {
  if (typeof iso !== 'string' || iso.length > 40 || !Number.isFinite(ms(iso))) return { type: INVALID_ARGUMENT, message: `${what} must be an ISO 8601 time.` };
  const t = ms(iso);
  if (t <= now) return { type: INVALID_ARGUMENT, message: `${what} must be in the future.` };
  if (t >= MAX_TIME_MS) return { type: INVALID_ARGUMENT, message: `${what} is too far in the future.` };
  return null;
}

function checkReason(reason: unknown): Refusal | null {
  if (typeof reason !== 'string' || reason.trim().length < 1 || reason.length > 500) return { type: INVALID_ARGUMENT, message: 'A reason of 1 to 500 characters is required.' };
  return null;
}

const refuse = (message: string): Refusal => ({ type: INVALID_TRANSITION, message });

export function checkRenew(s: LicenseSnapshot, args: RenewArgs, now: number): Refusal | null {
  const bad = checkActor(args?.actor) ?? checkFutureTime(args?.expiresAt, now, 'expiresAt');
  if (bad) return bad;
  if (s.state === 'revoked') return refuse(`License ${s.licenseId} is revoked; a revoked license cannot be renewed.`);
  if (s.trialEndsAt !== null) return refuse(`License ${s.licenseId} is an unconverted trial; convert the trial instead of renewing it.`);
  if (ms(args.expiresAt) <= ms(s.expiresAt)) return { type: INVALID_ARGUMENT, message: `expiresAt must be later than the current expiry (${s.expiresAt}).` };
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
  if (s.state !== 'trial' && s.state !== 'active' && s.state !== 'grace') return refuse(`License ${s.licenseId} is ${s.state}; only a trial, active or grace license can be suspended.`);
  return null;
}

export function checkResume(s: LicenseSnapshot, args: ResumeArgs): Refusal | null {
  const bad = checkActor(args?.actor);
  if (bad) return bad;
  if (s.state !== 'suspended') return refuse(`License ${s.licenseId} is ${s.state}, not suspended; there is nothing to resume.`);
  return null;
}

export function checkRevoke(s: LicenseSnapshot, args: RevokeArgs): Refusal | null {
  const bad = checkActor(args?.actor) ?? checkReason(args?.reason);
  if (bad) return bad;
  if (s.state === 'revoked') return refuse(`License ${s.licenseId} is already revoked.`);
  return null;
}

/** The initial snapshot of a license created with `input` at `now`. */
export function initialSnapshot(input: LicenseLifecycleInput, now: number): LicenseSnapshot {
  const terms: Terms = { expiresAt: input.expiresAt, trialEndsAt: input.trialEndsAt, graceDays: input.graceDays, trialEndState: input.trialEndState };
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

// ─── The workflow ────────────────────────────────────────────────────────────────────────────

/** Transitions wait out database outages: retried without limit, each try bounded. */
export const TRANSITION_ACTIVITY_TIMEOUT = '10 seconds';
export const TRANSITION_RETRY = { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' } as const;
/**
 * How many times a transition is tried as a local activity (backing off 0.5 s, 1 s, … : about 15 s
 * in all) before it is handed to the server to retry.
 */
export const LOCAL_TRANSITION_ATTEMPTS = 6;
/** Lifecycles that record this patch run their transitions as local activities. */
export const LOCAL_TRANSITION_PATCH = 'transition-as-local-activity';

type TransitionActivity = { applyLicenseTransition(input: LicenseTransitionInput): Promise<LicenseTransitionResult> };

/** The server schedules it, and retries it for as long as PostgreSQL is away, adding no events. */
const scheduled = proxyActivities<TransitionActivity>({ startToCloseTimeout: TRANSITION_ACTIVITY_TIMEOUT, retry: TRANSITION_RETRY });

/**
 * The worker runs it inside the workflow task that decided the transition: no activity task to
 * dispatch, start and complete, and no second workflow task to learn the result. On this
 * project's bench that halves the server work of a timer-driven transition. Bounded, because a
 * local activity that keeps retrying keeps its workflow task alive and grows the history.
 */
const localTransition = (attempts: number): TransitionActivity =>
  proxyLocalActivities<TransitionActivity>({ startToCloseTimeout: TRANSITION_ACTIVITY_TIMEOUT, retry: { ...TRANSITION_RETRY, maximumAttempts: attempts } });

/**
 * Applies one transition. Histories recorded before the patch replay their scheduled activities;
 * a transition whose local tries run out (PostgreSQL away) continues as a scheduled activity with
 * the same input, so the same idempotency key: a transition that committed is not written twice.
 */
async function applyTransition(local: TransitionActivity, input: LicenseTransitionInput): Promise<LicenseTransitionResult> {
  if (!patched(LOCAL_TRANSITION_PATCH)) return scheduled.applyLicenseTransition(input);
  try {
    return await local.applyLicenseTransition(input);
  } catch (err) {
    // A failed local activity surfaces as its cause (an ApplicationFailure, or a TimeoutFailure).
    const failure = err instanceof ActivityFailure ? err.cause : err;
    const refused = failure instanceof ApplicationFailure && failure.nonRetryable;
    if (err instanceof TemporalFailure && !(err instanceof CancelledFailure) && !refused) return scheduled.applyLicenseTransition(input);
    throw err;
  }
}

function fail(r: Refusal | null): void {
  if (r) throw ApplicationFailure.create({ type: r.type, message: r.message, nonRetryable: true });
}

export async function licenseLifecycle(input: LicenseLifecycleInput): Promise<LicenseSnapshot> {
  const info = workflowInfo();
  const workflowId = info.workflowId;
  let s: LicenseSnapshot = input.carried ?? initialSnapshot(input, Date.now());
  const local = localTransition(input.localTransitionAttempts ?? LOCAL_TRANSITION_ATTEMPTS);
  let busy = false;
  /** Bumped by every transition, so the main loop re-arms its timer. */
  let changes = 0;

  const snapshot = (): LicenseSnapshot => {
    const next = nextDeadline(s.state, s);
    return { ...s, nextTransitionAt: next === null ? null : new Date(next).toISOString() };
  };

  // The starter sets them and continue-as-new carries them; upsert only what is missing or stale
  // (a lifecycle started by hand), so a normal start costs no extra command.
  const attrs = info.typedSearchAttributes;
  if (attrs.get(LicenseIdAttribute) !== s.licenseId || attrs.get(CustomerIdAttribute) !== s.customerId || attrs.get(LicenseStateAttribute) !== s.state) {
    upsertSearchAttributes([
      { key: LicenseIdAttribute, value: s.licenseId },
      { key: CustomerIdAttribute, value: s.customerId },
      { key: LicenseStateAttribute, value: s.state },
    ]);
  }

  /** Runs one transition at a time; `plan` sees the state as it is once the lock is held. */
  async function transition(plan: (cur: LicenseSnapshot) => { refusal?: Refusal | null; next?: Omit<LicenseTransitionInput, 'workflowId' | 'licenseId' | 'customerId' | 'transition' | 'from' | 'effectiveAt'> }): Promise<LicenseSnapshot> {
    // Several waiters may wake in one activation: re-check after each wake-up.
    while (busy) await condition(() => !busy);
    busy = true;
    try {
      const p = plan(s);
      fail(p.refusal ?? null);
      if (!p.next) return snapshot();
      const effectiveAt = new Date(Date.now()).toISOString();
      const result = await applyTransition(local, {
        workflowId,
        licenseId: s.licenseId,
        customerId: s.customerId,
        transition: s.version,
        from: s.state,
        effectiveAt,
        ...p.next,
      });
      s = {
        ...s,
        state: p.next.to,
        version: result.version,
        expiresAt: p.next.expiresAt,
        trialEndsAt: p.next.trialEndsAt,
        reason: p.next.reason,
        changedAt: effectiveAt,
      };
      changes++;
      upsertSearchAttributes([{ key: LicenseStateAttribute, value: s.state }]);
      return snapshot();
    } finally {
      busy = false;
    }
  }

  const now = (): number => Date.now();
  /** After a change of terms (or a resume), the state is what the timers say unless suspended. */
  const stateAfter = (cur: LicenseSnapshot, terms: Terms): LicenseState => (cur.state === 'suspended' ? 'suspended' : scheduledState(terms, now()));

  setHandler(licenseStateQuery, snapshot);

  setHandler(renewUpdate, (args) => transition((cur) => {
    const refusal = checkRenew(cur, args, now());
    if (refusal) return { refusal };
    const terms = { ...cur, expiresAt: args.expiresAt };
    return { next: { action: 'license.renewed', to: stateAfter(cur, terms), expiresAt: args.expiresAt, trialEndsAt: null, reason: cur.state === 'suspended' ? cur.reason : null, actor: args.actor } };
  }), { validator: (args) => fail(checkRenew(s, args, now())) });

  setHandler(convertTrialUpdate, (args) => transition((cur) => {
    const refusal = checkConvertTrial(cur, args, now());
    if (refusal) return { refusal };
    const terms = { ...cur, expiresAt: args.expiresAt, trialEndsAt: null };
    return { next: { action: 'license.trial_converted', to: stateAfter(cur, terms), expiresAt: args.expiresAt, trialEndsAt: null, reason: cur.state === 'suspended' ? cur.reason : null, actor: args.actor } };
  }), { validator: (args) => fail(checkConvertTrial(s, args, now())) });

  setHandler(suspendUpdate, (args) => transition((cur) => {
    const refusal = checkSuspend(cur, args);
    if (refusal) return { refusal };
    return { next: { action: 'license.suspended', to: 'suspended', expiresAt: cur.expiresAt, trialEndsAt: cur.trialEndsAt, reason: args.reason, actor: args.actor } };
  }), { validator: (args) => fail(checkSuspend(s, args)) });

  setHandler(resumeUpdate, (args) => transition((cur) => {
    const refusal = checkResume(cur, args);
    if (refusal) return { refusal };
    return { next: { action: 'license.resumed', to: scheduledState(cur, now()), expiresAt: cur.expiresAt, trialEndsAt: cur.trialEndsAt, reason: null, actor: args.actor } };
  }), { validator: (args) => fail(checkResume(s, args)) });

  setHandler(revokeUpdate, (args) => transition((cur) => {
    const refusal = checkRevoke(cur, args);
    if (refusal) return { refusal };
    return { next: { action: 'license.revoked', to: 'revoked', expiresAt: cur.expiresAt, trialEndsAt: cur.trialEndsAt, reason: args.reason, actor: args.actor } };
  }), { validator: (args) => fail(checkRevoke(s, args)) });

  const timerActor: Actor = { kind: 'workflow', id: workflowId };
  const historyLimit = input.continueAsNewAtHistoryLength;

  for (;;) {
    const seen = changes;
    const deadline = nextDeadline(s.state, s);
    if (deadline !== null && deadline <= now()) {
      await transition((cur) => {
        const d = nextDeadline(cur.state, cur);
        if (d === null || d > now()) return {}; // an update moved the deadline meanwhile
        const to = scheduledState(cur, now());
        if (to === cur.state) return {};
        return { next: { action: timerAction(to), to, expiresAt: cur.expiresAt, trialEndsAt: cur.trialEndsAt, reason: null, actor: timerActor } };
      });
      continue;
    }
    const wake = () => changes !== seen || (wantsContinueAsNew() && !busy);
    if (deadline === null) await condition(wake);
    else await condition(wake, deadline - now());

    if (wantsContinueAsNew() && !busy) {
      await condition(() => allHandlersFinished() && !busy);
      // Handlers may have changed the state while we waited; the next run starts from it.
      await continueAsNew<typeof licenseLifecycle>({ ...input, carried: s });
    }
  }

  function wantsContinueAsNew(): boolean {
    const i = workflowInfo();
    // The lowered limit needs progress in this run, or a tiny limit would continue-as-new forever.
    return i.continueAsNewSuggested || (historyLimit !== undefined && changes > 0 && i.historyLength >= historyLimit);
  }
}
