import { createAdminAccounts } from './admin-accounts';
import { createCustomerAccounts } from './customer-accounts';
import { createIdentityContext, type IdentityDeps } from './identity-context';
import { adminView, customerUserView, customerView, serviceAccountView } from './identity-views';
import { createOwnAccount } from './own-account';
import { createServiceAccounts } from './service-accounts';

export { adminView, customerUserView, customerView, serviceAccountView };

/**
 * Admins, customers, customer users and service accounts. Every change and its audit row commit
 * in one transaction, attributed to the acting principal (service accounts as `system`).
 */
export function createIdentityService(deps: IdentityDeps) {
  const context = createIdentityContext(deps);
  return {
    ...createOwnAccount(deps, context),
    ...createAdminAccounts(deps, context),
    ...createCustomerAccounts(deps, context),
    ...createServiceAccounts(deps, context),
  };
}

export type IdentityService = ReturnType<typeof createIdentityService>;
