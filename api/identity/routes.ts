import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AppDeps } from '../app';
import { adminIdentityRoutes } from './admin-routes';
import { authRoutes } from './auth-routes';
import { ADMIN_COOKIE, PORTAL_COOKIE } from './cookies';
import { secondFactorRoutes } from './second-factor-routes';

/**
 * Every identity route group: sign-in, sign-out, me and password for admins (/v1/admin) and
 * customer users (/v1/portal), admins' second factors, and the admin's management of admins,
 * customers, their users and service accounts.
 */
export function identityRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  const services = deps.services.identity;
  return async (app) => {
    await app.register(
      authRoutes(
        { kind: 'admin', prefix: '/v1/admin', cookie: ADMIN_COOKIE, tag: 'admin auth', security: 'adminSession' },
        services,
      ),
    );
    await app.register(
      authRoutes(
        {
          kind: 'customer',
          prefix: '/v1/portal',
          cookie: PORTAL_COOKIE,
          tag: 'portal auth',
          security: 'portalSession',
        },
        services,
      ),
    );
    await app.register(adminIdentityRoutes(services));
    await app.register(secondFactorRoutes(services));
  };
}
