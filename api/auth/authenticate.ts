import type { FastifyRequest } from 'fastify';
import type { Pool } from 'pg';
import type { Clock } from '../../protocol';
import type { Authenticate, Principal } from './access';
import { createIdentityResolvers } from '../identity/resolvers';
import { createAgentCredentialResolver } from './agent-credential-resolver';
import type { StatusListener } from '../../services/agent-status/status-listener';

/**
 * One credential type's resolver: `undefined` when the request does not carry this kind of
 * credential, `null` when it does but the credential is not valid, a principal when it is.
 */
export type CredentialResolver = (req: FastifyRequest) => Promise<Principal | null | undefined>;

export type AuthenticatorDeps = {
  pool: Pool;
  clock: Clock;
  /** Origin allowed for cookie-authenticated state changes (CSRF). */ publicOrigin: string;
  /** The process's status listener: lets the agent resolver reuse lookups until a notice concerns the agent. */
  statusListener?: StatusListener;
};

/** Tries each resolver in order; the first that recognises its credential decides. */
export function chainResolvers(resolvers: CredentialResolver[]): Authenticate {
  return async (req) => {
    for (const resolve of resolvers) {
      const result = await resolve(req);
      if (result !== undefined) return result;
    }
    return null;
  };
}

/** The production authenticator. Resolvers are added by the identity and agent modules. */
export function createAuthenticator(deps: AuthenticatorDeps): Authenticate {
  return chainResolvers([...createIdentityResolvers(deps), createAgentCredentialResolver(deps)]);
}
