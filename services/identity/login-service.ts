import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { appendAudit, loginAccountsRepo, withTransaction, type AccountKind, type LoginAccount } from '../../db';
import type { Clock } from '../../protocol';
import { ACCOUNT_LOCKOUT_WORKFLOW, lockoutWorkflowId, type AccountLockoutInput } from '../../workflows/account-lockout';
import type { TemporalDeps } from '../temporal';
import { PASSWORD_MAX_BYTES, type PasswordHasher } from './passwords';
import type { IssuedSession, SessionService } from './session-service';

export const LOCKOUT_THRESHOLD = 5;
export const LOCKOUT_MS = 15 * 60_000;
/** How long a failed login's answer waits for the timer to start, and how long the start may try. */
const LOCKOUT_START_WAIT_MS = 2000;
const LOCKOUT_START_DEADLINE_MS = 10_000;

export type LoginMeta = { ip: string; userAgent: string | null };
/** Every refusal looks the same to the caller; `retryAfterSeconds` is set while the account is locked. */
export type LoginResult =
  { ok: true; account: LoginAccount; session: IssuedSession } | { ok: false; retryAfterSeconds?: number };
type Refusal = Extract<LoginResult, { ok: false }>;

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
};

/**
 * Password login for admins and customer users. Timing: every path that reaches a password check
 * runs exactly one scrypt at the current parameters (a dummy hash stands in for unknown emails),
 * and the row lock is taken only after scrypt, never held across it.
 */
export function createLoginService(deps: LoginServiceDeps) {
  const { passwords, sessions } = deps;
  let dummyHash: Promise<string> | undefined;
  const dummy = () => (dummyHash ??= passwords.hash('agentina-dummy-password-for-timing'));

  function refused(lockedUntil?: Date): Refusal {
    if (!lockedUntil) return { ok: false };
    return {
      ok: false,
      retryAfterSeconds: Math.max(1, Math.ceil((lockedUntil.getTime() - deps.clock.now().getTime()) / 1000)),
    };
  }

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

  async function recordFailure(
    account: LoginAccount,
    meta: LoginMeta,
    reason: 'wrong_password' | 'inactive',
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
      // A lock that has run out no longer counts, whether or not its timer has tidied up yet.
      const previous = row.lockedUntil ? 0 : row.failedLogins;
      const failures = previous + 1;
      const lockedUntil = failures >= LOCKOUT_THRESHOLD ? new Date(now.getTime() + LOCKOUT_MS) : null;
      await loginAccountsRepo.setLoginCounters(tx, account.kind, account.id, failures, lockedUntil, now);
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
      // Bounded: a slow or absent Temporal must not hold the answer; the start goes on in the background.
      const started = startLockoutTimer({
        kind: account.kind,
        accountId: account.id,
        lockedUntil: outcome.lockedUntil.toISOString(),
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        started,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, LOCKOUT_START_WAIT_MS))),
      ]);
      clearTimeout(timer);
    }
    return refused(outcome.lockedUntil);
  }

  return {
    /** A fresh session, or the one refusal (the same for unknown email, wrong password, inactive, locked). */
    async login(kind: AccountKind, email: string, password: string, meta: LoginMeta): Promise<LoginResult> {
      const account =
        email.length <= 254 ? await loginAccountsRepo.findAccountByEmail(deps.pool, kind, email) : undefined;
      if (!account) {
        await passwords.verify(password, await dummy());
        return refused();
      }
      const now = deps.clock.now();
      if (account.lockedUntil && account.lockedUntil > now) {
        // The right password changes nothing while locked; no scrypt is spent on a locked account.
        return recordFailure(account, meta, 'wrong_password');
      }
      const ok =
        Buffer.byteLength(password, 'utf8') <= PASSWORD_MAX_BYTES &&
        (await passwords.verify(password, account.passwordHash));
      if (!ok) return recordFailure(account, meta, 'wrong_password');
      if (!account.active) return recordFailure(account, meta, 'inactive');
      const rehashed = passwords.needsRehash(account.passwordHash) ? await passwords.hash(password) : undefined;

      // Re-checked under the row lock: a lock or deactivation may have landed during scrypt.
      return withTransaction(deps.pool, async (tx): Promise<LoginResult> => {
        const row = await loginAccountsRepo.lockAccount(tx, kind, account.id);
        const at = deps.clock.now();
        if (!row || !row.active) return refused();
        if (row.lockedUntil && row.lockedUntil > at) return refused(row.lockedUntil);
        if (row.failedLogins > 0 || row.lockedUntil)
          await loginAccountsRepo.setLoginCounters(tx, kind, account.id, 0, null, at);
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
            data: { ip: meta.ip, rehashed: rehashed !== undefined },
          },
          deps.clock,
        );
        return { ok: true, session, account: row };
      });
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
