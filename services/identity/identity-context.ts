import type { Pool } from 'pg';
import { appendAudit, customersRepo, loginAccountsRepo, withTransaction, type AccountKind, type Tx } from '../../db';
import type { CustomerRow } from '../../db/customers-repo';
import type { Clock } from '../../protocol';
import { actorOf, type CliCaller, type Principal } from '../principal';
import { AppError } from '../errors';
import { subjectKind } from './login-service';
import { checkPasswordRules, generateOneTimePassword, type PasswordHasher } from './passwords';

export type IdentityDeps = { pool: Pool; clock: Clock; passwords: PasswordHasher };

export const LIST_LIMIT = 500;

export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}

/** What the identity modules share: first passwords, audit rows, the customer lookup, unlocking. */
export function createIdentityContext(deps: IdentityDeps) {
  const { passwords } = deps;

  /** A chosen password (checked against the rules) or a generated one-time password. */
  async function initialPassword(password: string | undefined) {
    if (password !== undefined) checkPasswordRules(password);
    const plain = password ?? generateOneTimePassword();
    return { hash: await passwords.hash(plain), oneTimePassword: password === undefined ? plain : undefined };
  }

  async function audit(
    tx: Tx,
    by: Principal | CliCaller,
    action: Parameters<typeof appendAudit>[1]['action'],
    subject: { kind: string; id: string },
    data?: Record<string, unknown>,
  ) {
    await appendAudit(tx, { actor: actorOf(by), action, subject, ...(data ? { data } : {}) }, deps.clock);
  }

  async function requireCustomer(db: Pool | Tx, id: string): Promise<CustomerRow> {
    const c = await customersRepo.findCustomer(db, id);
    if (!c) throw new AppError('NOT_FOUND', 'No such customer.');
    return c;
  }

  /** Clears the lock and the failure counter now; the sleeping timer later finds nothing to do. */
  async function unlock(by: Principal, kind: AccountKind, id: string): Promise<{ unlocked: boolean }> {
    return withTransaction(deps.pool, async (tx) => {
      const account = await loginAccountsRepo.lockAccount(tx, kind, id);
      if (!account)
        throw new AppError('NOT_FOUND', kind === 'admin' ? 'No such admin.' : 'No such user for this customer.');
      const wasLocked = account.lockedUntil?.toISOString() ?? null;
      const cleared = await loginAccountsRepo.clearLock(tx, kind, id, deps.clock.now());
      if (cleared) {
        await audit(
          tx,
          by,
          kind === 'admin' ? 'admin.unlocked' : 'customer_user.unlocked',
          { kind: subjectKind(kind), id },
          { lockedUntil: wasLocked, failedLogins: account.failedLogins },
        );
      }
      return { unlocked: cleared };
    });
  }

  return { initialPassword, audit, requireCustomer, unlock };
}

export type IdentityContext = ReturnType<typeof createIdentityContext>;
