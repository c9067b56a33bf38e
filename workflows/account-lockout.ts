import { proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { IdentityActivities } from '../activities/identity-activities';

/**
 * accountLockout — id `lockout/<admin|customer>/<accountId>`, started when a failed login makes 5
 * within 15 minutes, with conflict policy USE_EXISTING. The lock itself lives in the database
 * (`locked_until`); this workflow only ends it: it sleeps until the lock ends, then clears the
 * failure counter and audits `account.unlocked`. If the account was locked again meanwhile, it
 * sleeps on until the newer lock ends. Payloads carry ids and dates only.
 */
export type AccountLockoutInput = { kind: 'admin' | 'customer'; accountId: string; lockedUntil: string };
export type AccountLockoutResult = 'unlocked' | 'already_clear' | 'gone';

export const ACCOUNT_LOCKOUT_WORKFLOW = 'accountLockout';

export function lockoutWorkflowId(kind: AccountLockoutInput['kind'], accountId: string): string {
  return `lockout/${kind}/${accountId}`;
}

const MAX_RELOCKS = 50;

const LOCKOUT_ACTIVITY_RETRY = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' };

const { endAccountLockout, deleteExpiredSessions } = proxyActivities<IdentityActivities>({
  startToCloseTimeout: '1 minute',
  retry: LOCKOUT_ACTIVITY_RETRY,
});

export async function accountLockout(input: AccountLockoutInput): Promise<AccountLockoutResult> {
  let until = Date.parse(input.lockedUntil);
  for (let i = 0; i < MAX_RELOCKS; i++) {
    const wait = until - Date.now();
    if (wait > 0) await sleep(wait);
    const r = await endAccountLockout({
      kind: input.kind,
      accountId: input.accountId,
      now: new Date(Date.now()).toISOString(),
      workflowId: workflowInfo().workflowId,
    });
    if (r.outcome !== 'relocked') return r.outcome;
    until = Date.parse(r.lockedUntil);
  }
  return 'already_clear';
}

/** Scheduled: deletes sessions past their idle or hard limit (the schedule `agentina-session-purge`). */
export async function purgeExpiredSessions(): Promise<{ admin: number; customer: number }> {
  return deleteExpiredSessions({ now: new Date(Date.now()).toISOString() });
}
