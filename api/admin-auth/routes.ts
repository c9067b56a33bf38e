import type { IdentityServices } from '../../services/identity';
import { authRoutes } from '../identity/auth-routes';
import { ADMIN_COOKIE } from '../identity/cookies';

/** POST /v1/admin/login, POST /v1/admin/logout, GET /v1/admin/me, POST /v1/admin/me/password. */
export function adminAuthRoutes(services: IdentityServices) {
  return authRoutes(
    { kind: 'admin', prefix: '/v1/admin', cookie: ADMIN_COOKIE, tag: 'admin auth', security: 'adminSession' },
    services,
  );
}
