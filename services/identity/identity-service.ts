import type { Pool } from 'pg';
import {
  adminsRepo,
  appendAudit,
  customersRepo,
  customerUsersRepo,
  loginAccountsRepo,
  serviceAccountsRepo,
  sessionsRepo,
  withTransaction,
  type AccountKind,
  type Tx,
} from '../../db';
import type { CustomerRow } from '../../db/customers-repo';
import type { CustomerUserRow } from '../../db/customer-users-repo';
import { newId, newSecret, scrubFreeText, type AdminRole, type Clock, type ServiceScope } from '../../protocol';
import { actorOf, type CliCaller, type Principal } from '../principal';
import { AppError } from '../errors';
import { subjectKind } from './login-service';
import { checkPasswordRules, generateOneTimePassword, type PasswordHasher } from './passwords';
import { sha256Hex } from '../secrets';
import { adminView, customerUserView, customerView, iso, serviceAccountView } from './identity-views';

export { adminView, customerUserView, customerView, serviceAccountView };

const LIST_LIMIT = 500;

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}

/**
 * Admins, customers, customer users and service accounts. Every change and its audit row commit
 * in one transaction, attributed to the acting principal (service accounts as `system`).
 */
export function createIdentityService(deps: { pool: Pool; clock: Clock; passwords: PasswordHasher }) {
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

  async function requireUserOf(db: Pool | Tx, customerId: string, userId: string): Promise<CustomerUserRow> {
    const u = await customerUsersRepo.findCustomerUser(db, userId);
    if (!u || u.customer_id !== customerId) throw new AppError('NOT_FOUND', 'No such user for this customer.');
    return u;
  }

  /**
   * Refuses a change that would leave no active owner. The active owners' rows are locked first,
   * so two owners demoting (or deactivating) each other at once cannot both succeed.
   */
  async function refuseLastOwner(tx: Tx, id: string, change: 'demoted' | 'deactivated'): Promise<void> {
    const owners = await adminsRepo.lockActiveOwners(tx);
    if (owners.length === 1 && owners[0] === id)
      throw new AppError('CONFLICT', `The last active owner cannot be ${change}; make another admin an owner first.`);
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

    // --- admins -------------------------------------------------------------------------------
    async countAdmins(): Promise<number> {
      return adminsRepo.countAdmins(deps.pool);
    },

    async listAdmins() {
      const now = deps.clock.now();
      return (await adminsRepo.listAdmins(deps.pool, LIST_LIMIT)).map((a) => adminView(a, now));
    },

    /**
     * An admin; without a password, with a one-time password returned once (only its hash is kept).
     * Without a role, a viewer: more power is given on purpose, never by default.
     */
    async createAdmin(
      by: Principal | CliCaller,
      input: { email: string; displayName?: string; password?: string; role?: AdminRole },
    ) {
      const pw = await initialPassword(input.password);
      try {
        return await withTransaction(deps.pool, async (tx) => {
          if (await customerUsersRepo.emailTaken(tx, input.email))
            throw new AppError('CONFLICT', 'That email address is already in use.');
          const row = await adminsRepo.insertAdmin(tx, {
            id: newId('adm'),
            email: input.email,
            passwordHash: pw.hash,
            role: input.role ?? 'viewer',
            displayName: scrubFreeText(input.displayName ?? '', 200),
            mustChangePassword: pw.oneTimePassword !== undefined,
          });
          await audit(
            tx,
            by,
            'admin.created',
            { kind: 'admin', id: row.id },
            {
              email: row.email,
              role: row.role,
              oneTimePassword: pw.oneTimePassword !== undefined,
              ...(by.kind === 'cli' ? { via: 'cli' } : {}),
            },
          );
          return {
            admin: adminView(row, deps.clock.now()),
            ...(pw.oneTimePassword ? { oneTimePassword: pw.oneTimePassword } : {}),
          };
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('CONFLICT', 'That email address is already in use.');
        throw err;
      }
    },

    /** Deactivation ends every session of the admin in the same transaction. */
    async setAdminActive(by: Principal, id: string, active: boolean) {
      return withTransaction(deps.pool, async (tx) => {
        const target = await loginAccountsRepo.lockAccount(tx, 'admin', id);
        if (!target) throw new AppError('NOT_FOUND', 'No such admin.');
        if (!active && by.kind === 'admin' && by.id === id)
          throw new AppError('CONFLICT', 'You cannot deactivate yourself.');
        if (!active && target.active && (await adminsRepo.countActiveAdmins(tx)) <= 1)
          throw new AppError('CONFLICT', 'The last active admin cannot be deactivated.');
        if (!active) await refuseLastOwner(tx, id, 'deactivated');
        const now = deps.clock.now();
        if (await loginAccountsRepo.setAccountActive(tx, 'admin', id, active, now)) {
          const ended = active ? 0 : await sessionsRepo.deleteSessionsOfAccount(tx, 'admin', id);
          await audit(
            tx,
            by,
            active ? 'admin.reactivated' : 'admin.deactivated',
            { kind: 'admin', id },
            active ? undefined : { sessionsEnded: ended },
          );
        }
        return adminView((await adminsRepo.findAdmin(tx, id))!, now);
      });
    },

    unlockAdmin: (by: Principal, id: string) => unlock(by, 'admin', id),

    /** Gives an admin another role; the last active owner cannot be demoted (nor deactivated, above). */
    async setAdminRole(by: Principal, id: string, role: AdminRole) {
      return withTransaction(deps.pool, async (tx) => {
        const target = await adminsRepo.findAdmin(tx, id);
        if (!target) throw new AppError('NOT_FOUND', 'No such admin.');
        if (role !== 'owner') await refuseLastOwner(tx, id, 'demoted');
        const now = deps.clock.now();
        if (await adminsRepo.setAdminRole(tx, id, role, now)) {
          await audit(tx, by, 'admin.role_changed', { kind: 'admin', id }, { from: target.role, to: role });
        }
        return adminView((await adminsRepo.findAdmin(tx, id))!, now);
      });
    },

    // --- customers and their users ------------------------------------------------------------
    async listCustomers() {
      return (await customersRepo.listCustomers(deps.pool, { limit: LIST_LIMIT })).map(customerView);
    },

    async getCustomer(id: string) {
      return customerView(await requireCustomer(deps.pool, id));
    },

    async createCustomer(by: Principal, input: { name: string }) {
      return withTransaction(deps.pool, async (tx) => {
        const row = await customersRepo.insertCustomer(tx, {
          id: newId('cus'),
          name: scrubFreeText(input.name, 200),
          now: deps.clock.now(),
        });
        await audit(tx, by, 'customer.created', { kind: 'customer', id: row.id }, { name: row.name });
        return customerView(row);
      });
    },

    /** Its users can no longer sign in, and every portal session of the customer ends now. */
    async deactivateCustomer(by: Principal, id: string) {
      return withTransaction(deps.pool, async (tx) => {
        await requireCustomer(tx, id);
        if (await customersRepo.deactivateCustomer(tx, id, deps.clock.now())) {
          const ended = await sessionsRepo.deleteSessionsOfCustomer(tx, id);
          await audit(tx, by, 'customer.deactivated', { kind: 'customer', id }, { sessionsEnded: ended });
        }
        return customerView((await customersRepo.findCustomer(tx, id))!);
      });
    },

    async listCustomerUsers(customerId: string) {
      await requireCustomer(deps.pool, customerId);
      const now = deps.clock.now();
      return (await customerUsersRepo.listCustomerUsers(deps.pool, customerId, LIST_LIMIT)).map((u) =>
        customerUserView(u, now),
      );
    },

    async createCustomerUser(
      by: Principal,
      customerId: string,
      input: { email: string; displayName?: string; password?: string },
    ) {
      await requireCustomer(deps.pool, customerId);
      const pw = await initialPassword(input.password);
      try {
        return await withTransaction(deps.pool, async (tx) => {
          const customer = await requireCustomer(tx, customerId);
          if (!customer.active) throw new AppError('CONFLICT', 'The customer is deactivated.');
          if (await customerUsersRepo.emailTaken(tx, input.email))
            throw new AppError('CONFLICT', 'That email address is already in use.');
          const row = await customerUsersRepo.insertCustomerUser(tx, {
            id: newId('usr'),
            customerId,
            email: input.email,
            displayName: scrubFreeText(input.displayName ?? '', 200),
            passwordHash: pw.hash,
            mustChangePassword: pw.oneTimePassword !== undefined,
            now: deps.clock.now(),
          });
          await audit(
            tx,
            by,
            'customer_user.created',
            { kind: 'customer_user', id: row.id },
            { customerId, email: row.email, oneTimePassword: pw.oneTimePassword !== undefined },
          );
          return {
            user: customerUserView(row, deps.clock.now()),
            ...(pw.oneTimePassword ? { oneTimePassword: pw.oneTimePassword } : {}),
          };
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('CONFLICT', 'That email address is already in use.');
        throw err;
      }
    },

    /** Deactivation ends every session of the user in the same transaction. */
    async setCustomerUserActive(by: Principal, customerId: string, userId: string, active: boolean) {
      return withTransaction(deps.pool, async (tx) => {
        await requireUserOf(tx, customerId, userId);
        await loginAccountsRepo.lockAccount(tx, 'customer', userId);
        const now = deps.clock.now();
        if (await loginAccountsRepo.setAccountActive(tx, 'customer', userId, active, now)) {
          const ended = active ? 0 : await sessionsRepo.deleteSessionsOfAccount(tx, 'customer', userId);
          await audit(
            tx,
            by,
            active ? 'customer_user.reactivated' : 'customer_user.deactivated',
            { kind: 'customer_user', id: userId },
            active ? { customerId } : { customerId, sessionsEnded: ended },
          );
        }
        return customerUserView((await customerUsersRepo.findCustomerUser(tx, userId))!, now);
      });
    },

    async unlockCustomerUser(by: Principal, customerId: string, userId: string) {
      await requireUserOf(deps.pool, customerId, userId);
      return unlock(by, 'customer', userId);
    },

    // --- service accounts ---------------------------------------------------------------------
    async listServiceAccounts() {
      return (await serviceAccountsRepo.listServiceAccounts(deps.pool, LIST_LIMIT)).map(serviceAccountView);
    },

    /**
     * The token is returned here once; only its sha256 is kept. It may do what its scopes name and
     * nothing else, and is refused like an unknown token from `expiresAt` on.
     */
    async createServiceAccount(
      by: Principal,
      input: { name: string; scopes: readonly ServiceScope[]; expiresAt?: string | undefined },
    ) {
      const now = deps.clock.now();
      const expiresAt = input.expiresAt === undefined ? null : new Date(input.expiresAt);
      if (expiresAt && !(expiresAt.getTime() > now.getTime()))
        throw new AppError('VALIDATION_FAILED', 'The expiry must be in the future.', [
          { path: 'body.expiresAt', message: 'not in the future' },
        ]);
      const scopes = [...new Set(input.scopes)].sort();
      const token = newSecret('svc');
      return withTransaction(deps.pool, async (tx) => {
        const row = await serviceAccountsRepo.insertServiceAccount(tx, {
          id: newId('svcacct'),
          name: scrubFreeText(input.name, 200),
          tokenHash: sha256Hex(token),
          tokenHint: token.slice(-4),
          scopes,
          expiresAt,
          createdBy: `${by.kind}:${by.id}`,
          now,
        });
        await audit(
          tx,
          by,
          'service_account.created',
          { kind: 'service_account', id: row.id },
          { name: row.name, scopes, expiresAt: iso(expiresAt) },
        );
        return { serviceAccount: serviceAccountView(row), token };
      });
    },

    async revokeServiceAccount(by: Principal, id: string) {
      return withTransaction(deps.pool, async (tx) => {
        if (!(await serviceAccountsRepo.findServiceAccount(tx, id)))
          throw new AppError('NOT_FOUND', 'No such service account.');
        if (await serviceAccountsRepo.revokeServiceAccount(tx, id, deps.clock.now())) {
          await audit(tx, by, 'service_account.revoked', { kind: 'service_account', id });
        }
        return serviceAccountView((await serviceAccountsRepo.findServiceAccount(tx, id))!);
      });
    },
  };
}

export type IdentityService = ReturnType<typeof createIdentityService>;
