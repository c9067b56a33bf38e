import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AppDeps } from '../app';
import { adminAuthRoutes } from '../admin-auth/routes';
import { portalAuthRoutes } from '../portal-auth/routes';
import { adminIdentityRoutes } from './admin-routes';
import { createIdentityServices } from '../../services/identity';

/** Every identity route group, sharing one set of services. */
export function identityRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  const services = createIdentityServices(deps);
  return async (app) => {
    await app.register(adminAuthRoutes(services));
    await app.register(portalAuthRoutes(services));
    await app.register(adminIdentityRoutes(services));
  };
}
