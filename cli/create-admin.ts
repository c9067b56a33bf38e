import type { Pool } from 'pg';
import { adminsRepo, appendAudit, customerUsersRepo, withTransaction } from '../db';
import { newId } from '../protocol';
import { checkPasswordRules, generateOneTimePassword, hashPassword } from '../services/identity/passwords';

export type CreatedAdmin = { id: string; email: string; oneTimePassword?: string };

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,189}$/;

/**
 * Creates an admin. Without a password, generates a one-time password that is returned once
 * (to be printed) and must be changed at first login; only its scrypt hash is stored.
 */
export async function createAdmin(pool: Pool, input: { email: string; password?: string }): Promise<CreatedAdmin> {
  if (!EMAIL.test(input.email)) throw new Error(`not an email address: ${JSON.stringify(input.email.slice(0, 80))}`);
  const oneTime = input.password === undefined;
  const password = input.password ?? generateOneTimePassword();
  if (!oneTime) checkPasswordRules(password);
  const passwordHash = await hashPassword(password);
  const id = newId('adm');
  await withTransaction(pool, async (tx) => {
    if (await customerUsersRepo.emailTaken(tx, input.email))
      throw new Error(`that email address is already in use: ${input.email.slice(0, 80)}`);
    const row = await adminsRepo.insertAdmin(tx, { id, email: input.email, passwordHash, mustChangePassword: oneTime });
    // The operator at the shell is not an admin yet; the CLI acts as the system.
    await appendAudit(tx, {
      actor: { kind: 'system', id: 'cli' },
      action: 'admin.created',
      subject: { kind: 'admin', id },
      data: { email: row.email, oneTimePassword: oneTime, via: 'cli' },
    });
  });
  return oneTime
    ? { id, email: input.email.toLowerCase(), oneTimePassword: password }
    : { id, email: input.email.toLowerCase() };
}
