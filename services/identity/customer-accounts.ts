import type { Pool } from 'pg';
import { customersRepo, customerUsersRepo, loginAccountsRepo, sessionsRepo, withTransaction, type Tx } from '../../db';
import type { CustomerUserRow } from '../../db/customer-users-repo';
import { newId, scrubFreeText } from '../../protocol';
import type { Principal } from '../principal';
import { AppError } from '../errors';
import { isUniqueViolation, LIST_LIMIT, type IdentityContext, type IdentityDeps } from './identity-context';
import { customerUserView, customerView } from './identity-views';

/** Customers and their portal users: creation, deactivation (ending their sessions) and unlocking. */
export function createCustomerAccounts(
  deps: IdentityDeps,
  { initialPassword, audit, requireCustomer, unlock }: IdentityContext,
) {
  async function requireUserOf(db: Pool | Tx, customerId: string, userId: string): Promise<CustomerUserRow> {
    const u = await customerUsersRepo.findCustomerUser(db, userId);
    if (!u || u.customer_id !== customerId) throw new AppError('NOT_FOUND', 'No such user for this customer.');
    return u;
  }

  return {
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
  };
}
