import type { Services } from '../services';
import type { AdminRole } from '../protocol';
import { CLI_CALLER } from '../services/principal';

export type CreatedAdmin = { id: string; email: string; oneTimePassword?: string };

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,189}$/;

/**
 * `agentina create-admin`: an admin created by the operator at the shell (audited as
 * `system`/`cli`), an owner unless another role is given (the shell bootstraps the first owner). Without a password, the one-time password is returned once, to be printed; it
 * must be changed at first login.
 */
export async function createAdmin(
  accounts: Services['identity']['accounts'],
  input: { email: string; password?: string; role?: AdminRole },
): Promise<CreatedAdmin> {
  if (!EMAIL.test(input.email)) throw new Error(`not an email address: ${JSON.stringify(input.email.slice(0, 80))}`);
  const created = await accounts.createAdmin(CLI_CALLER, { ...input, role: input.role ?? 'owner' });
  return {
    id: created.admin.id,
    email: created.admin.email,
    ...(created.oneTimePassword ? { oneTimePassword: created.oneTimePassword } : {}),
  };
}
