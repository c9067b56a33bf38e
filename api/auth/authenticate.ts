import type { FastifyRequest } from 'fastify';
import type { Services } from '../../services';
import type { Authenticate, Principal } from './access';
import { createAgentCredentialResolver } from './agent-credential-resolver';
import { createIdentityResolvers } from './session-resolvers';
import { ADMIN_COOKIE, PORTAL_COOKIE, readCookie } from '../identity/cookies';

/**
 * One credential type's resolver: `undefined` when the request does not carry this kind of
 * credential, `null` when it does but the credential is not valid, a principal when it is.
 */
export type CredentialResolver = (req: FastifyRequest) => Promise<Principal | null | undefined>;

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

/**
 * The production authenticator: service tokens, session cookies (CSRF-checked against
 * `publicOrigin`), then agent credentials.
 */
export function createAuthenticator(
  services: Pick<Services, 'identity' | 'agentCredentials'>,
  publicOrigin: string,
): Authenticate {
  return chainResolvers([
    ...createIdentityResolvers(services.identity.sessions, publicOrigin),
    createAgentCredentialResolver(services.agentCredentials),
  ]);
}

/**
 * The credential the request carries that the production authenticator looks up (an
 * Authorization header, session cookies), or undefined. Only these can cost a lookup, so only
 * these spend the failed-authentication budget (api/auth/access.ts).
 */
export function presentsCredential(req: FastifyRequest): string | undefined {
  const parts = [req.headers.authorization, readCookie(req, ADMIN_COOKIE), readCookie(req, PORTAL_COOKIE)];
  if (parts.every((p) => p === undefined)) return undefined;
  return parts.map((p) => p ?? '').join('\n');
}
