import { adminsRepo, customerUsersRepo, loginAccountsRepo, sessionsRepo, withTransaction } from '../../db';
import type { Principal } from '../principal';
import { AppError } from '../errors';
import { subjectKind } from './login-service';
import { checkPasswordRules } from './passwords';
import type { IdentityContext, IdentityDeps } from './identity-context';
import { adminView, customerUserView } from './identity-views';

/** The signed-in admin's or customer user's own account: who they are, signing out, their password. */
export function createOwnAccount(deps: IdentityDeps, { audit, requireCustomer }: IdentityContext) {
  const { passwords } = deps;

  return {
    async me(p: Extract<Principal, { kind: 'admin' | 'customer' }>) {
      const now = deps.clock.now();
      if (p.kind === 'admin') {
        const a = await adminsRepo.findAdmin(deps.pool, p.id);
        if (!a) throw new AppError('UNAUTHENTICATED', 'Sign in or present a valid credential.');
        const policies = await adminsRepo.listRolePolicies(deps.pool);
        return { ...adminView(a, now), totpRequired: policies.some((r) => r.role === a.role && r.totp_required) };
      }
      const u = await customerUsersRepo.findCustomerUser(deps.pool, p.id);
      if (!u) throw new AppError('UNAUTHENTICATED', 'Sign in or present a valid credential.');
      const c = await requireCustomer(deps.pool, u.customer_id);
      return { ...customerUserView(u, now), customerName: c.name };
    },

    async logout(p: Extract<Principal, { kind: 'admin' | 'customer' }>): Promise<void> {
      await withTransaction(deps.pool, async (tx) => {
        if (await sessionsRepo.deleteSession(tx, p.kind, p.sessionId)) {
          await audit(tx, p, 'session.deleted', { kind: 'session', id: p.sessionId }, { reason: 'logout' });
        }
      });
    },

    /** Changes the caller's own password and ends every other session of theirs. */
    async changeOwnPassword(
      p: Extract<Principal, { kind: 'admin' | 'customer' }>,
      current: string,
      next: string,
    ): Promise<{ otherSessionsEnded: number }> {
      checkPasswordRules(next, 'body.newPassword');
      const account = await loginAccountsRepo.findAccountById(deps.pool, p.kind, p.id);
      if (!account || !(await passwords.verify(current, account.passwordHash))) {
        throw new AppError('VALIDATION_FAILED', 'The current password is not correct.', [
          { path: 'body.currentPassword', message: 'not correct' },
        ]);
      }
      if (current === next)
        throw new AppError('VALIDATION_FAILED', 'The new password must differ from the current one.', [
          { path: 'body.newPassword', message: 'same as the current password' },
        ]);
      const hash = await passwords.hash(next);
      return withTransaction(deps.pool, async (tx) => {
        await loginAccountsRepo.lockAccount(tx, p.kind, p.id);
        await loginAccountsRepo.setPasswordHash(tx, p.kind, p.id, hash, false, deps.clock.now());
        const ended = await sessionsRepo.deleteSessionsOfAccount(tx, p.kind, p.id, p.sessionId);
        await audit(
          tx,
          p,
          p.kind === 'admin' ? 'admin.password_changed' : 'customer_user.password_changed',
          { kind: subjectKind(p.kind), id: p.id },
          { otherSessionsEnded: ended },
        );
        return { otherSessionsEnded: ended };
      });
    },
  };
}
