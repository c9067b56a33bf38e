/**
 * licenseLifecycle — one workflow per license, id `license/<licenseId>`.
 *
 *   trial ──► active ──► grace ──► expired        (timers; renewals move the deadlines)
 *   trial/active/grace ⇄ suspended                (resume returns to what the timers say now)
 *   any state but revoked ──► revoked             (terminal)
 *
 * Every change is one transition: one activity (local, see applyTransition) that writes the row
 * (version + 1), the audit row, the status feed row and the NOTIFY in one PostgreSQL
 * transaction. Transitions are serialized. What is allowed when lives in license-rules.ts; the
 * names the API shares in license-contract.ts.
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
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  ExpiringSoonInput,
  LicenseTransitionInput,
  LicenseTransitionResult,
} from '../activities/license-activities';
import type { Actor } from '../protocol/audit-chain';
import type { LicenseState } from '../protocol/schemas';
import {
  changeTermsUpdate,
  convertTrialUpdate,
  CustomerIdAttribute,
  LicenseIdAttribute,
  licenseStateQuery,
  LicenseStateAttribute,
  renewUpdate,
  resumeUpdate,
  revokeUpdate,
  suspendUpdate,
  TRANSITION_REFUSALS,
  type LicenseLifecycleInput,
  type LicenseSnapshot,
} from './license-contract';
import {
  checkChangeTerms,
  checkConvertTrial,
  checkRenew,
  checkResume,
  checkRevoke,
  checkSuspend,
  DEFAULT_EXPIRY_NOTICE_DAYS,
  expiryNotice,
  initialSnapshot,
  nextDeadline,
  scheduledState,
  timerAction,
  type ExpiryNoticeSent,
  type Refusal,
  type Terms,
} from './license-rules';

/** Transitions wait out database outages: retried without limit, each try bounded. */
export const TRANSITION_ACTIVITY_TIMEOUT = '10 seconds';
export const TRANSITION_RETRY = {
  initialInterval: '500 milliseconds',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
} as const;
/**
 * How many times a transition is tried as a local activity (backing off 0.5 s, 1 s, … : about 15 s
 * in all) before it is handed to the server to retry.
 */
export const LOCAL_TRANSITION_ATTEMPTS = 6;
/** Lifecycles that record this patch run their transitions as local activities. */
export const LOCAL_TRANSITION_PATCH = 'transition-as-local-activity';
/**
 * Lifecycles that record this patch outlive a timer transition the database refused for good
 * (license-contract.ts TRANSITION_REFUSALS): they try it again later and keep serving updates,
 * where before the patch the refusal failed the workflow.
 */
export const REFUSED_TIMER_PATCH = 'refused-timer-transition-retried';
/** How long a lifecycle waits before trying a refused timer transition again (unless a change comes first). */
export const REFUSED_TIMER_RETRY_MS = 60 * 60 * 1000;

/** A transition the database refused for good: no retry of the same write can succeed. */
function refusedForGood(err: unknown): boolean {
  const failure = err instanceof ActivityFailure ? err.cause : err;
  return (
    failure instanceof ApplicationFailure &&
    failure.nonRetryable === true &&
    TRANSITION_REFUSALS.includes(failure.type ?? '')
  );
}

/**
 * Lifecycles that record this patch hand an Update's arguments (with the API's origin proof) to
 * the transition activity, which refuses an Update the API did not sign.
 */
export const UPDATE_ORIGIN_PATCH = 'update-origin-proof';

/** What the transition activity needs to check an Update's origin; nothing before the patch. */
function originOf(update: string, args: unknown): Pick<LicenseTransitionInput, 'origin'> {
  return patched(UPDATE_ORIGIN_PATCH) ? { origin: { update, args } } : {};
}

/**
 * Lifecycles that record this patch announce `license.expiring_soon` from their own timers
 * (input.expiryNoticeDays before expiry); histories recorded before it replay without them.
 */
export const EXPIRY_NOTICE_PATCH = 'expiry-notices';
export const EXPIRY_NOTICE_TIMEOUT = '30 seconds';

/** Notices wait out database outages like transitions do: retried without limit, each try bounded. */
const notices = proxyActivities<{ announceLicenseExpiringSoon(input: ExpiringSoonInput): Promise<void> }>({
  startToCloseTimeout: EXPIRY_NOTICE_TIMEOUT,
  retry: TRANSITION_RETRY,
});

type TransitionActivity = { applyLicenseTransition(input: LicenseTransitionInput): Promise<LicenseTransitionResult> };

/** The server schedules it, and retries it for as long as PostgreSQL is away, adding no events. */
const scheduled = (summary: string) =>
  proxyActivities<TransitionActivity>({
    startToCloseTimeout: TRANSITION_ACTIVITY_TIMEOUT,
    retry: TRANSITION_RETRY,
    summary,
  });

/**
 * The worker runs it inside the workflow task that decided the transition: no activity task to
 * dispatch, start and complete, and no second workflow task to learn the result. On this
 * project's bench that halves the server work of a timer-driven transition. Bounded, because a
 * local activity that keeps retrying keeps its workflow task alive and grows the history.
 */
const localTransition =
  (attempts: number) =>
  (summary: string): TransitionActivity =>
    proxyLocalActivities<TransitionActivity>({
      startToCloseTimeout: TRANSITION_ACTIVITY_TIMEOUT,
      retry: { ...TRANSITION_RETRY, maximumAttempts: attempts },
      summary,
    });

/** What Temporal Web shows for a transition's activity: "apply revoke · active → revoked". */
function transitionSummary(input: Pick<LicenseTransitionInput, 'action' | 'from' | 'to' | 'origin'>): string {
  return `apply ${input.origin?.update ?? input.action.replace(/^license\./, '')} · ${input.from} → ${input.to}`;
}

/** What Temporal Web shows for the lifecycle's timer: which date it waits for, and that date. */
function timerSummary(state: string, wakeAtMs: number, retrying: boolean): string {
  const what = retrying
    ? 'retry a refused transition'
    : state === 'trial'
      ? 'trial ends'
      : state === 'active'
        ? 'expiry'
        : state === 'grace'
          ? 'grace ends'
          : 'next transition';
  return `${what} at ${new Date(wakeAtMs).toISOString()}`;
}

/**
 * Applies one transition. Histories recorded before the patch replay their scheduled activities;
 * a transition whose local tries run out (PostgreSQL away) continues as a scheduled activity with
 * the same input, so the same idempotency key: a transition that committed is not written twice.
 */
async function applyTransition(
  local: (summary: string) => TransitionActivity,
  input: LicenseTransitionInput,
): Promise<LicenseTransitionResult> {
  const summary = transitionSummary(input);
  if (!patched(LOCAL_TRANSITION_PATCH)) return scheduled(summary).applyLicenseTransition(input);
  try {
    return await local(summary).applyLicenseTransition(input);
  } catch (err) {
    // A failed local activity surfaces as its cause (an ApplicationFailure, or a TimeoutFailure).
    const failure = err instanceof ActivityFailure ? err.cause : err;
    const refused = failure instanceof ApplicationFailure && failure.nonRetryable;
    if (err instanceof TemporalFailure && !(err instanceof CancelledFailure) && !refused)
      return scheduled(summary).applyLicenseTransition(input);
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
  if (
    attrs.get(LicenseIdAttribute) !== s.licenseId ||
    attrs.get(CustomerIdAttribute) !== s.customerId ||
    attrs.get(LicenseStateAttribute) !== s.state
  ) {
    upsertSearchAttributes([
      { key: LicenseIdAttribute, value: s.licenseId },
      { key: CustomerIdAttribute, value: s.customerId },
      { key: LicenseStateAttribute, value: s.state },
    ]);
  }

  /** Runs one transition at a time; `plan` sees the state as it is once the lock is held. */
  async function transition(
    plan: (cur: LicenseSnapshot) => {
      refusal?: Refusal | null;
      next?: Omit<
        LicenseTransitionInput,
        'workflowId' | 'licenseId' | 'customerId' | 'transition' | 'from' | 'effectiveAt'
      >;
    },
  ): Promise<LicenseSnapshot> {
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
        // A change of terms moves the grace timer; every other transition keeps it.
        graceDays: p.next.terms?.graceDays ?? s.graceDays,
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
  const stateAfter = (cur: LicenseSnapshot, terms: Terms): LicenseState =>
    cur.state === 'suspended' ? 'suspended' : scheduledState(terms, now());

  setHandler(licenseStateQuery, snapshot);

  setHandler(
    renewUpdate,
    (args) =>
      transition((cur) => {
        const refusal = checkRenew(cur, args, now());
        if (refusal) return { refusal };
        const terms = { ...cur, expiresAt: args.expiresAt };
        return {
          next: {
            action: 'license.renewed',
            to: stateAfter(cur, terms),
            expiresAt: args.expiresAt,
            trialEndsAt: null,
            reason: cur.state === 'suspended' ? cur.reason : null,
            actor: args.actor,
            ...originOf('renew', args),
          },
        };
      }),
    { validator: (args) => fail(checkRenew(s, args, now())) },
  );

  setHandler(
    convertTrialUpdate,
    (args) =>
      transition((cur) => {
        const refusal = checkConvertTrial(cur, args, now());
        if (refusal) return { refusal };
        const terms = { ...cur, expiresAt: args.expiresAt, trialEndsAt: null };
        return {
          next: {
            action: 'license.trial_converted',
            to: stateAfter(cur, terms),
            expiresAt: args.expiresAt,
            trialEndsAt: null,
            reason: cur.state === 'suspended' ? cur.reason : null,
            actor: args.actor,
            ...originOf('convertTrial', args),
          },
        };
      }),
    { validator: (args) => fail(checkConvertTrial(s, args, now())) },
  );

  setHandler(
    suspendUpdate,
    (args) =>
      transition((cur) => {
        const refusal = checkSuspend(cur, args);
        if (refusal) return { refusal };
        return {
          next: {
            action: 'license.suspended',
            to: 'suspended',
            expiresAt: cur.expiresAt,
            trialEndsAt: cur.trialEndsAt,
            reason: args.reason,
            actor: args.actor,
            ...originOf('suspend', args),
          },
        };
      }),
    { validator: (args) => fail(checkSuspend(s, args)) },
  );

  setHandler(
    resumeUpdate,
    (args) =>
      transition((cur) => {
        const refusal = checkResume(cur, args);
        if (refusal) return { refusal };
        return {
          next: {
            action: 'license.resumed',
            to: scheduledState(cur, now()),
            expiresAt: cur.expiresAt,
            trialEndsAt: cur.trialEndsAt,
            reason: null,
            actor: args.actor,
            ...originOf('resume', args),
          },
        };
      }),
    { validator: (args) => fail(checkResume(s, args)) },
  );

  setHandler(
    revokeUpdate,
    (args) =>
      transition((cur) => {
        const refusal = checkRevoke(cur, args);
        if (refusal) return { refusal };
        return {
          next: {
            action: 'license.revoked',
            to: 'revoked',
            expiresAt: cur.expiresAt,
            trialEndsAt: cur.trialEndsAt,
            reason: args.reason,
            actor: args.actor,
            ...originOf('revoke', args),
          },
        };
      }),
    { validator: (args) => fail(checkRevoke(s, args)) },
  );

  setHandler(
    changeTermsUpdate,
    (args) =>
      transition((cur) => {
        const refusal = checkChangeTerms(cur, args);
        if (refusal) return { refusal };
        // New grace days can move the state both ways (a shorter grace may end it now).
        const terms = { ...cur, graceDays: args.terms.graceDays ?? cur.graceDays };
        return {
          next: {
            action: 'license.terms_changed',
            to: stateAfter(cur, terms),
            expiresAt: cur.expiresAt,
            trialEndsAt: cur.trialEndsAt,
            reason: cur.state === 'suspended' ? cur.reason : null,
            actor: args.actor,
            terms: args.terms,
            ...originOf('changeTerms', args),
          },
        };
      }),
    { validator: (args) => fail(checkChangeTerms(s, args)) },
  );

  const timerActor: Actor = { kind: 'workflow', id: workflowId };
  const historyLimit = input.continueAsNewAtHistoryLength;
  /** A refused timer transition is not tried again before this (workflow) time. */
  let timerRefusedUntil: number | null = null;
  const noticeDays = input.expiryNoticeDays ?? DEFAULT_EXPIRY_NOTICE_DAYS;
  let noticeSent: ExpiryNoticeSent | null = input.expiryNoticeSent ?? null;

  for (;;) {
    const seen = changes;
    let noticeAt: number | null = null;
    if (noticeDays.length > 0 && patched(EXPIRY_NOTICE_PATCH)) {
      const notice = expiryNotice(s.state, s.expiresAt, now(), noticeDays, noticeSent);
      if (notice.due !== null) {
        const sent = { expiresAt: s.expiresAt, daysBefore: notice.due };
        await notices.announceLicenseExpiringSoon({
          workflowId,
          licenseId: s.licenseId,
          customerId: s.customerId,
          ...sent,
        });
        noticeSent = sent;
        continue;
      }
      noticeAt = notice.nextAt;
    }
    const deadline = nextDeadline(s.state, s);
    if (deadline !== null && deadline <= now() && (timerRefusedUntil === null || timerRefusedUntil <= now())) {
      try {
        await timerTransition();
        timerRefusedUntil = null;
      } catch (err) {
        if (!refusedForGood(err) || !patched(REFUSED_TIMER_PATCH)) throw err;
        // Failing here would end the lifecycle (no later revoke could land); retrying at once
        // would spin. Wait, serving updates meanwhile: an update may make the transition moot.
        log.warn('timer transition refused by the database; trying again later', {
          licenseId: s.licenseId,
          error: err instanceof Error ? err.message : String(err),
        });
        timerRefusedUntil = now() + (input.refusedTimerRetryMs ?? REFUSED_TIMER_RETRY_MS);
      }
      continue;
    }
    const wake = () => changes !== seen || (wantsContinueAsNew() && !busy);
    const timerAt = deadline === null ? null : Math.max(deadline, timerRefusedUntil ?? deadline);
    const wakeAt = noticeAt === null ? timerAt : timerAt === null ? noticeAt : Math.min(timerAt, noticeAt);
    if (wakeAt === null) await condition(wake);
    else
      await condition(wake, wakeAt - now(), {
        summary: timerSummary(s.state, wakeAt, timerRefusedUntil !== null && wakeAt === timerRefusedUntil),
      });
    if (changes !== seen) timerRefusedUntil = null; // the change may have made the refusal moot

    if (wantsContinueAsNew() && !busy) {
      await condition(() => allHandlersFinished() && !busy);
      // Handlers may have changed the state while we waited; the next run starts from it.
      await continueAsNew<typeof licenseLifecycle>({
        ...input,
        carried: s,
        ...(noticeSent ? { expiryNoticeSent: noticeSent } : {}),
      });
    }
  }

  function timerTransition(): Promise<LicenseSnapshot> {
    return transition((cur) => {
      const d = nextDeadline(cur.state, cur);
      if (d === null || d > now()) return {}; // an update moved the deadline meanwhile
      const to = scheduledState(cur, now());
      if (to === cur.state) return {};
      return {
        next: {
          action: timerAction(to),
          to,
          expiresAt: cur.expiresAt,
          trialEndsAt: cur.trialEndsAt,
          reason: null,
          actor: timerActor,
        },
      };
    });
  }

  function wantsContinueAsNew(): boolean {
    const i = workflowInfo();
    // The lowered limit needs progress in this run, or a tiny limit would continue-as-new forever.
    return i.continueAsNewSuggested || (historyLimit !== undefined && changes > 0 && i.historyLength >= historyLimit);
  }
}
