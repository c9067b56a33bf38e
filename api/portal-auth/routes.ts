import type { IdentityServices } from '../../services/identity';
import { authRoutes } from '../identity/auth-routes';
import { PORTAL_COOKIE } from '../identity/cookies';

/** POST /v1/portal/login, POST /v1/portal/logout, GET /v1/portal/me, POST /v1/portal/me/password. */
export function portalAuthRoutes(services: IdentityServices) {
  return authRoutes(
    { kind: 'customer', prefix: '/v1/portal', cookie: PORTAL_COOKIE, tag: 'portal auth', security: 'portalSession' },
    services,
  );
}
