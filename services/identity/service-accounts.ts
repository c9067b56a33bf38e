import { serviceAccountsRepo, withTransaction } from '../../db';
import { newId, newSecret, scrubFreeText, type ServiceScope } from '../../protocol';
import type { Principal } from '../principal';
import { AppError } from '../errors';
import { sha256Hex } from '../secrets';
import { LIST_LIMIT, type IdentityContext, type IdentityDeps } from './identity-context';
import { iso, serviceAccountView } from './identity-views';

/** Service accounts: scoped bearer tokens, shown once, kept only as a hash, revoked by hand. */
export function createServiceAccounts(deps: IdentityDeps, { audit }: IdentityContext) {
  return {
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
