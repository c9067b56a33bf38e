import { appendAudit, loginAccountsRepo, sessionsRepo, withTransaction } from '../db';
import type { AccountKind } from '../db/login-accounts-repo';
import type { ActivityDeps } from './create-activities';

/** Matches api/identity/session-service.ts SESSION_IDLE_MS (activities may not import api/). */
const SESSION_IDLE_MS = 8 * 3600_000;

export type EndLockoutInput = { kind: AccountKind; accountId: string; now: string; workflowId: string };
export type EndLockoutResult =
  { outcome: 'unlocked' | 'already_clear' | 'gone' } | { outcome: 'relocked'; lockedUntil: string };

export function createIdentityActivities(deps: Pick<ActivityDeps, 'pool' | 'clock'>) {
  return {
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

    async deleteExpiredSessions(input: { now: string }): Promise<{ admin: number; customer: number }> {
      return sessionsRepo.purgeExpiredSessions(deps.pool, new Date(input.now), SESSION_IDLE_MS);
    },
  };
}

export type IdentityActivities = ReturnType<typeof createIdentityActivities>;
