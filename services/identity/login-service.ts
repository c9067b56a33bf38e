import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { appendAudit, loginAccountsRepo, withTransaction, type AccountKind, type LoginAccount } from '../../db';
import type { Clock } from '../../protocol';
import { ACCOUNT_LOCKOUT_WORKFLOW, lockoutWorkflowId, type AccountLockoutInput } from '../../workflows/account-lockout';
import type { TemporalDeps } from '../temporal';
import { clientAddressKey, createFailureBudget } from './failure-budget';
import { PASSWORD_MAX_BYTES, type PasswordHasher } from './passwords';
import type { SecondFactorService } from './second-factor-service';
import type { IssuedSession, SessionService } from './session-service';

/** LOCKOUT_THRESHOLD failed logins within LOCKOUT_WINDOW_MS lock the account for LOCKOUT_MS. */
export const LOCKOUT_THRESHOLD = 5;
export const LOCKOUT_WINDOW_MS = 15 * 60_000;
export const LOCKOUT_MS = 15 * 60_000;
/**
 * Failed logins one client address may spend on one email within the lockout window: fewer than
 * the threshold, so no single address can lock an account (SECURITY.md, "Lockout and guessing").
 */
export const ADDRESS_FAILURES_PER_ACCOUNT = LOCKOUT_THRESHOLD - 1;
/** How many recent failure times an account row keeps (the threshold, with room for reordering). */
const FAILURE_TIMES_KEPT = 2 * LOCKOUT_THRESHOLD;
/** How long the lockout timer's start may try before giving up (the lock holds without it). */
const LOCKOUT_START_DEADLINE_MS = 10_000;

export type LoginMeta = { ip: string; userAgent: string | null };
/**
 * Every refusal looks the same to the caller, whether the email is unknown, the password wrong,
 * the account inactive or locked. `throttledForSeconds` is set only when this address has spent
 * its failures on this email (the same for an unknown email as for a real one).
 */
export type LoginResult =
  | { ok: true; account: LoginAccount; session: IssuedSession }
  | { ok: false; throttledForSeconds?: number; secondFactorRequired?: true };
type Refusal = Extract<LoginResult, { ok: false }>;

/** Whether `threshold` of the (sorted) failure times fall within one window: the lock rule. */
export function lockDue(sortedTimes: readonly number[], threshold = LOCKOUT_THRESHOLD, windowMs = LOCKOUT_WINDOW_MS) {
  for (let i = 0; i + threshold - 1 < sortedTimes.length; i++) {
    if (sortedTimes[i + threshold - 1]! - sortedTimes[i]! < windowMs) return true;
  }
  return false;
}

/** Audit actor for attempts made before anyone is authenticated. */
const ANONYMOUS = { kind: 'system' as const, id: 'anonymous' };

export function subjectKind(kind: AccountKind): 'admin' | 'customer_user' {
  return kind === 'admin' ? 'admin' : 'customer_user';
}

export type EndLockoutInput = { kind: AccountKind; accountId: string; now: string; workflowId: string };
export type EndLockoutResult =
  { outcome: 'unlocked' | 'already_clear' | 'gone' } | { outcome: 'relocked'; lockedUntil: string };

export type LoginServiceDeps = {
  pool: Pool;
  clock: Clock;
  temporal: Pick<TemporalDeps, 'client' | 'taskQueue'>;
  logger: Pick<Logger, 'warn'>;
  passwords: PasswordHasher;
  sessions: SessionService;
  secondFactors: Pick<SecondFactorService, 'checkAtLogin'>;
};

/**
 * Password login for admins and customer users. No existence oracle: unknown, wrong-password,
 * inactive and locked accounts all run exactly one scrypt (a dummy hash stands in for unknown
 * emails; a locked account's own hash is checked and ignored) and get the one refusal, with the
 * same headers. The row lock is taken only after scrypt, never held across it.
 *
 * Lockout abuse is bounded per client address: each (address, email) pair may fail
 * ADDRESS_FAILURES_PER_ACCOUNT times per window, spent before scrypt and forgiven on success,
 * and the lock needs LOCKOUT_THRESHOLD failures within the same window: one address alone never
 * locks an account out.
 */
export function createLoginService(deps: LoginServiceDeps) {
  const { passwords, sessions } = deps;
  let dummyHash: Promise<string> | undefined;
  const dummy = () => (dummyHash ??= passwords.hash('agentina-dummy-password-for-timing'));
  const addressBudget = createFailureBudget({
    max: ADDRESS_FAILURES_PER_ACCOUNT,
    windowMs: LOCKOUT_WINDOW_MS,
    now: () => deps.clock.now().getTime(),
  });
  const pendingTimerStarts = new Set<Promise<void>>();

  const refused = (): Refusal => ({ ok: false });

  async function startLockoutTimer(input: AccountLockoutInput): Promise<void> {
    try {
      const client = deps.temporal.client;
      await client.connection.withDeadline(Date.now() + LOCKOUT_START_DEADLINE_MS, () =>
        client.workflow.start(ACCOUNT_LOCKOUT_WORKFLOW, {
          taskQueue: deps.temporal.taskQueue,
          workflowId: lockoutWorkflowId(input.kind, input.accountId),
          workflowIdConflictPolicy: 'USE_EXISTING',
          args: [input],
        }),
      );
    } catch (err) {
      // The lock is enforced from the database and ends on its own at locked_until; only the
      // tidy-up (counter reset and its audit row) waits for the next failed attempt.
      deps.logger.warn(
        { err: (err as Error).message, kind: input.kind, accountId: input.accountId },
        'could not start the lockout timer',
      );
    }
  }

  /** Started in the background: the refusal that locks must not take longer than any other. */
  function startLockoutTimerSoon(input: AccountLockoutInput): void {
    const started: Promise<void> = startLockoutTimer(input).finally(() => pendingTimerStarts.delete(started));
    pendingTimerStarts.add(started);
  }

  /** `startedAt`: when the attempt began (and spent its address budget), in the clock's ms. */
  async function recordFailure(
    account: LoginAccount,
    meta: LoginMeta,
    reason: 'wrong_password' | 'inactive' | 'second_factor_missing' | 'wrong_second_factor',
    startedAt: number,
  ): Promise<Refusal> {
    const outcome = await withTransaction(deps.pool, async (tx) => {
      const now = deps.clock.now();
      const row = await loginAccountsRepo.lockAccount(tx, account.kind, account.id);
      if (!row) return { lockedUntil: undefined, lockedNow: false };
      const subject = { kind: subjectKind(account.kind), id: account.id };
      if (row.lockedUntil && row.lockedUntil > now) {
        await appendAudit(
          tx,
          {
            actor: ANONYMOUS,
            action: 'login.refused_locked',
            subject,
            data: { ip: meta.ip, lockedUntil: row.lockedUntil.toISOString() },
          },
          deps.clock,
        );
        return { lockedUntil: row.lockedUntil, lockedNow: false };
      }
      if (reason === 'inactive') {
        await appendAudit(
          tx,
          { actor: ANONYMOUS, action: 'login.failed', subject, data: { ip: meta.ip, reason } },
          deps.clock,
        );
        return { lockedUntil: undefined, lockedNow: false };
      }
      // Failures count within the window only; a lock that has run out no longer counts at all,
      // whether or not its timer has tidied up yet.
      const earlier = row.lockedUntil
        ? []
        : row.failureTimes.map((d) => d.getTime()).filter((t) => Math.abs(startedAt - t) < LOCKOUT_WINDOW_MS);
      const times = [...earlier, startedAt].sort((a, b) => a - b).slice(-FAILURE_TIMES_KEPT);
      const failures = times.length;
      const lockedUntil = lockDue(times) ? new Date(now.getTime() + LOCKOUT_MS) : null;
      await loginAccountsRepo.setLoginCounters(
        tx,
        account.kind,
        account.id,
        times.map((t) => new Date(t)),
        lockedUntil,
        now,
      );
      await appendAudit(
        tx,
        { actor: ANONYMOUS, action: 'login.failed', subject, data: { ip: meta.ip, reason, failures } },
        deps.clock,
      );
      if (lockedUntil) {
        await appendAudit(
          tx,
          {
            actor: ANONYMOUS,
            action: 'account.locked',
            subject,
            data: { ip: meta.ip, failures, lockedUntil: lockedUntil.toISOString() },
          },
          deps.clock,
        );
      }
      return { lockedUntil: lockedUntil ?? undefined, lockedNow: lockedUntil !== null };
    });
    if (outcome.lockedNow && outcome.lockedUntil) {
      startLockoutTimerSoon({
        kind: account.kind,
        accountId: account.id,
        lockedUntil: outcome.lockedUntil.toISOString(),
      });
    }
    return refused();
  }

  return {
    /**
     * A fresh session, or the one refusal (the same for unknown email, wrong password, inactive,
     * locked). An account with a second factor also needs `code` (a TOTP code or a recovery code):
     * without one the right password gets `secondFactorRequired`, and a missing or wrong code
     * counts as a failed login toward the same lockout.
     */
    async login(
      kind: AccountKind,
      email: string,
      password: string,
      meta: LoginMeta,
      code?: string,
    ): Promise<LoginResult> {
      const { normalizedEmail, account } =
        email.length <= 254
          ? await loginAccountsRepo.findLoginCandidate(deps.pool, kind, email)
          : { normalizedEmail: email, account: undefined };
      // Spent before scrypt, so parallel attempts cannot all pass; keyed on the email as written
      // (normalized), never on whether an account answers to it.
      const budgetKey = `${kind}\u0000${clientAddressKey(meta.ip)}\u0000${normalizedEmail}`;
      const taken = addressBudget.take(budgetKey);
      if (!taken.ok) return { ok: false, throttledForSeconds: Math.ceil(taken.retryAfterMs / 1000) };

      // One scrypt on every path: the account's own hash (locked or not) or the dummy.
      const matches =
        Buffer.byteLength(password, 'utf8') <= PASSWORD_MAX_BYTES &&
        (await passwords.verify(password, account?.passwordHash ?? (await dummy())));
      if (!account) return refused();
      // The right password changes nothing while locked.
      if (account.lockedUntil && account.lockedUntil > deps.clock.now())
        return recordFailure(account, meta, 'wrong_password', taken.at);
      if (!matches) return recordFailure(account, meta, 'wrong_password', taken.at);
      if (!account.active) return recordFailure(account, meta, 'inactive', taken.at);
      const rehashed = passwords.needsRehash(account.passwordHash) ? await passwords.hash(password) : undefined;

      // Re-checked under the row lock: a lock or deactivation may have landed during scrypt.
      type Attempt = LoginResult | { ok: false; secondFactor: 'missing' | 'wrong' };
      const result = await withTransaction(deps.pool, async (tx): Promise<Attempt> => {
        const row = await loginAccountsRepo.lockAccount(tx, kind, account.id);
        const at = deps.clock.now();
        if (!row || !row.active) return refused();
        if (row.lockedUntil && row.lockedUntil > at) return refused();
        const second = await deps.secondFactors.checkAtLogin(tx, kind, account.id, code);
        if (second === 'missing' || second === 'wrong') return { ok: false, secondFactor: second };
        if (row.failedLogins > 0 || row.lockedUntil || row.failureTimes.length > 0)
          await loginAccountsRepo.setLoginCounters(tx, kind, account.id, [], null, at);
        if (rehashed && row.passwordHash === account.passwordHash) {
          await loginAccountsRepo.setPasswordHash(tx, kind, account.id, rehashed, row.mustChangePassword, at);
        }
        const session = await sessions.issue(tx, kind, {
          accountId: account.id,
          customerId: account.customerId,
          ip: meta.ip,
          userAgent: meta.userAgent,
        });
        await appendAudit(
          tx,
          {
            actor: { kind: kind === 'admin' ? 'admin' : 'customer', id: account.id },
            action: 'session.created',
            subject: { kind: 'session', id: session.id },
            data: {
              ip: meta.ip,
              rehashed: rehashed !== undefined,
              ...(second === 'not_enrolled' ? {} : { secondFactor: second === 'accepted' ? 'totp' : 'recovery_code' }),
            },
          },
          deps.clock,
        );
        return { ok: true, session, account: row };
      });
      if ('secondFactor' in result) {
        const missing = result.secondFactor === 'missing';
        await recordFailure(account, meta, missing ? 'second_factor_missing' : 'wrong_second_factor', taken.at);
        return missing ? { ok: false, secondFactorRequired: true } : refused();
      }
      // Whoever signs in from this address knows the password: its failures here are forgiven.
      if (result.ok) addressBudget.forget(budgetKey);
      return result;
    },

    /** Waits for lockout timers still being started (process shutdown). */
    async settle(): Promise<void> {
      await Promise.all([...pendingTimerStarts]);
    },

    /**
     * Ends a lock that has run out (judged by the workflow's clock, `now`), clears the counter and
     * audits `account.unlocked` once: the idempotency key names the workflow and the lock's end.
     */
    async endAccountLockout(input: EndLockoutInput): Promise<EndLockoutResult> {
      return withTransaction(deps.pool, async (tx) => {
        const account = await loginAccountsRepo.lockAccount(tx, input.kind, input.accountId);
        if (!account) return { outcome: 'gone' as const };
        if (!account.lockedUntil) return { outcome: 'already_clear' as const };
        if (account.lockedUntil.getTime() > Date.parse(input.now))
          return { outcome: 'relocked' as const, lockedUntil: account.lockedUntil.toISOString() };
        const lockedUntil = account.lockedUntil.toISOString();
        await loginAccountsRepo.clearLock(tx, input.kind, input.accountId, deps.clock.now());
        await appendAudit(
          tx,
          {
            actor: { kind: 'workflow', id: input.workflowId },
            action: 'account.unlocked',
            subject: { kind: input.kind === 'admin' ? 'admin' : 'customer_user', id: input.accountId },
            data: { lockedUntil, by: 'timer' },
            idempotencyKey: `${input.workflowId}#${lockedUntil}`,
          },
          deps.clock,
        );
        return { outcome: 'unlocked' as const };
      });
    },
  };
}

export type LoginService = ReturnType<typeof createLoginService>;
