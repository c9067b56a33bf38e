import { adminsRepo, customerUsersRepo, loginAccountsRepo, sessionsRepo, withTransaction, type Tx } from '../../db';
import { newId, scrubFreeText, type AdminRole } from '../../protocol';
import type { CliCaller, Principal } from '../principal';
import { AppError } from '../errors';
import { isUniqueViolation, LIST_LIMIT, type IdentityContext, type IdentityDeps } from './identity-context';
import { adminView } from './identity-views';

/** Admin accounts: creation, roles, deactivation and unlocking; the last owner is never lost. */
export function createAdminAccounts(deps: IdentityDeps, { initialPassword, audit, unlock }: IdentityContext) {
  /**
   * Refuses a change that would leave no active owner. The active owners' rows are locked first,
   * so two owners demoting (or deactivating) each other at once cannot both succeed.
   */
  async function refuseLastOwner(tx: Tx, id: string, change: 'demoted' | 'deactivated'): Promise<void> {
    const owners = await adminsRepo.lockActiveOwners(tx);
    if (owners.length === 1 && owners[0] === id)
      throw new AppError('CONFLICT', `The last active owner cannot be ${change}; make another admin an owner first.`);
  }

  return {
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
  };
}
