import type { FastifyRequest } from 'fastify';
import type { Principal } from './access';
import type { CredentialResolver } from './authenticate';
import { AppError } from '../errors';
import { csrfRefusal, originOf } from './csrf';
import type { SessionService } from '../../services/identity/session-service';
import { ADMIN_COOKIE, PORTAL_COOKIE, bearerToken, readCookie } from '../identity/cookies';

/** All a session with a one-time password may do. */
const PASSWORD_CHANGE_ROUTES: ReadonlySet<string> = new Set(
  ['/v1/admin', '/v1/portal'].flatMap((p) => [`GET ${p}/me`, `POST ${p}/me/password`, `POST ${p}/logout`]),
);
/** All an admin whose role requires a second factor may do before enrolling one. */
const TOTP_ENROL_ROUTES: ReadonlySet<string> = new Set([
  'GET /v1/admin/me',
  'POST /v1/admin/logout',
  'GET /v1/admin/me/totp',
  'POST /v1/admin/me/totp',
  'POST /v1/admin/me/totp/confirm',
]);

/**
 * `Authorization: Bearer svc_…`. Other bearer tokens (e.g. agent `agc_…`) are not ours: undefined
 * lets the next resolver in the chain look at them.
 */
export function createServiceTokenResolver(sessions: SessionService): CredentialResolver {
  return async (req) => {
    const token = bearerToken(req);
    if (token === undefined || !token.startsWith('svc_')) return undefined;
    return sessions.resolveServiceToken(token);
  };
}

/**
 * The admin and portal session cookies. Each cookie is only ever looked up in its own table, so an
 * admin cookie means nothing to the portal and vice versa. When a browser holds both, the route's
 * access list decides which one speaks. Cookie-authenticated state changes pass the CSRF check.
 */
export function createSessionResolver(sessions: SessionService, publicOrigin: string): CredentialResolver {
  const allowed = new Set([originOf(publicOrigin)]);
  const mustChange = new WeakSet<FastifyRequest>();
  const mustEnrol = new WeakSet<FastifyRequest>();

  async function fromCookie(req: FastifyRequest, kind: 'admin' | 'customer'): Promise<Principal | null | undefined> {
    const token = readCookie(req, kind === 'admin' ? ADMIN_COOKIE : PORTAL_COOKIE);
    if (token === undefined) return undefined;
    const s = await sessions.resolve(kind, token);
    if (!s) return null;
    if (s.mustChangePassword) mustChange.add(req);
    if (s.mustEnrolTotp) mustEnrol.add(req);
    return kind === 'admin'
      ? { kind: 'admin', id: s.accountId, sessionId: s.id, ...(s.role ? { role: s.role } : {}) }
      : { kind: 'customer', id: s.accountId, customerId: s.customerId!, sessionId: s.id };
  }

  async function refuseCsrf(
    req: FastifyRequest,
    principal: Principal & { sessionId: string },
    reason: string,
  ): Promise<never> {
    const origin = req.headers.origin;
    await sessions.recordCsrfRefusal(principal, {
      reason,
      method: req.method,
      route: req.routeOptions.url ?? null,
      origin: typeof origin === 'string' ? origin.slice(0, 200) : null,
      ip: req.ip,
    });
    throw new AppError('FORBIDDEN', 'This request was refused: it did not come from this site as JSON.');
  }

  return async (req) => {
    // A request with an Authorization header is not using ambient credentials; bearer resolvers decide.
    if (req.headers.authorization !== undefined) return undefined;
    const access = req.routeOptions.config?.access ?? [];
    const order: Array<'admin' | 'customer'> =
      access.includes('customer') && !access.includes('admin') ? ['customer', 'admin'] : ['admin', 'customer'];
    for (const kind of order) {
      const principal = await fromCookie(req, kind);
      if (principal === undefined) continue;
      if (principal === null) return null;
      // Public routes do not act on the caller's authority, so there is nothing to forge.
      if (access.includes('anonymous')) return principal;
      const refusal = csrfRefusal(req, allowed);
      if (refusal) await refuseCsrf(req, principal as Principal & { sessionId: string }, refusal);
      // A one-time password buys exactly one thing: choosing a real one.
      const route = `${req.method} ${req.routeOptions.url ?? ''}`;
      if (mustChange.has(req) && !PASSWORD_CHANGE_ROUTES.has(route)) {
        throw new AppError('FORBIDDEN', 'Change your one-time password first (POST …/me/password).');
      }
      // Checked after the password change, so a new admin changes the password first, then enrols.
      if (mustEnrol.has(req) && !mustChange.has(req) && !TOTP_ENROL_ROUTES.has(route)) {
        throw new AppError(
          'FORBIDDEN',
          'Your role requires a second factor: enrol one first (POST /v1/admin/me/totp).',
        );
      }
      return principal;
    }
    return undefined;
  };
}

/** The identity resolvers, in the order they belong in the chain. */
export function createIdentityResolvers(sessions: SessionService, publicOrigin: string): CredentialResolver[] {
  return [createServiceTokenResolver(sessions), createSessionResolver(sessions, publicOrigin)];
}
