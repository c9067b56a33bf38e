import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AppDeps } from '../app';
import { adminIdentityRoutes } from './admin-routes';
import { authRoutes, type AuthGroup } from './auth-routes';
import { ADMIN_COOKIE, PORTAL_COOKIE } from './cookies';
import { ownSecondFactorRoutes, secondFactorRoutes } from './second-factor-routes';

/**
 * Every identity route group: sign-in, sign-out, me and password for admins (/v1/admin) and
 * customer users (/v1/portal), each one's own second factor, the owners' second-factor policy, and the admin's management of admins,
 * customers, their users and service accounts.
 */
export function identityRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  const services = deps.services.identity;
  const admin: AuthGroup = {
    kind: 'admin',
    prefix: '/v1/admin',
    cookie: ADMIN_COOKIE,
    tag: 'admin auth',
    security: 'adminSession',
  };
  const portal: AuthGroup = {
    kind: 'customer',
    prefix: '/v1/portal',
    cookie: PORTAL_COOKIE,
    tag: 'portal auth',
    security: 'portalSession',
  };
  return async (app) => {
    for (const group of [admin, portal]) {
      await app.register(authRoutes(group, services));
      await app.register(ownSecondFactorRoutes(group, services));
    }
    await app.register(adminIdentityRoutes(services));
    await app.register(secondFactorRoutes(services));
  };
}
