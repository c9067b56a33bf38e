import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FailureBudget } from '../../services/identity/failure-budget';
import type { Principal } from '../../services/principal';
import { AppError } from '../errors';

export type { Principal };
export { actorOf } from '../../services/principal';

export type PrincipalKind = Principal['kind'];
export type AccessKind = 'anonymous' | PrincipalKind;

/** Resolves the caller from the request (cookies, bearer tokens); null when anonymous. */
export type Authenticate = (req: FastifyRequest) => Promise<Principal | null>;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call this route. 'anonymous' makes it public. */
    access?: readonly AccessKind[];
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** Narrows `req.principal` for handlers whose route already restricted the kinds. */
export function principalOf<K extends PrincipalKind>(
  req: FastifyRequest,
  ...kinds: K[]
): Extract<Principal, { kind: K }> {
  const p = req.principal;
  if (!p || !(kinds as string[]).includes(p.kind)) throw new AppError('FORBIDDEN', 'You may not do this.');
  return p as Extract<Principal, { kind: K }>;
}

export type RegisteredRoute = { method: string; url: string; access: readonly AccessKind[] };
const ROUTE_REGISTRIES = new WeakMap<object, RegisteredRoute[]>();

/** Every route registered on the app (HEAD twins of GET left out): the authorization matrix walks them all. */
export function registeredRoutes(app: object): RegisteredRoute[] {
  return [...(ROUTE_REGISTRIES.get(app) ?? [])];
}

/** Plugin-registered routes (OpenAPI UI, static files) that are public by nature. */
const PUBLIC_PREFIXES = ['/docs'];

/**
 * Failed authentications spend their client address's budget, checked before any credential is
 * looked up: past it, a request that carries a credential is refused (429) without a lookup, or
 * served as anonymous where the route is public.
 */
export type AuthFailureLimit = {
  /** Whether the request carries a credential the authenticator would look up. */
  presented(req: FastifyRequest): boolean;
  /** The budget's key for this request's client (its address, behind trusted proxies). */
  keyOf(req: FastifyRequest): string;
  budget: Pick<FailureBudget, 'reserve'>;
};

/**
 * Installs deny-by-default access control: authenticate every request to a matched route,
 * then allow it only if the principal's kind is in the route's `access` list.
 * 401 when no valid credential was presented, 403 when the credential is of the wrong kind,
 * 429 when the caller's address has failed to authenticate too often (see AuthFailureLimit).
 */
export function installAccessControl(app: FastifyInstance, authenticate: Authenticate, limit?: AuthFailureLimit): void {
  async function resolve(req: FastifyRequest, access: readonly AccessKind[]): Promise<Principal | null> {
    if (!limit?.presented(req)) return authenticate(req);
    const place = limit.budget.reserve(limit.keyOf(req));
    if (!place.ok) {
      if (access.includes('anonymous')) return null;
      throw new AppError(
        'RATE_LIMITED',
        'Too many failed authentications from your address; try again later.',
        undefined,
        { 'retry-after': String(Math.ceil(place.retryAfterMs / 1000)) },
      );
    }
    let principal: Principal | null;
    try {
      principal = await authenticate(req);
    } catch (err) {
      // A refusal of a valid credential (CSRF, one-time password) or an outage: not a guess.
      place.pass();
      throw err;
    }
    if (principal) place.pass();
    else place.fail();
    return principal;
  }

  const undeclared: string[] = [];
  const registry: RegisteredRoute[] = [];
  ROUTE_REGISTRIES.set(app, registry);
  app.decorateRequest('principal', null);
  app.addHook('onRoute', (route) => {
    if (!route.config?.access && PUBLIC_PREFIXES.some((p) => route.url === p || route.url.startsWith(`${p}/`))) {
      route.config = { ...(route.config ?? {}), access: ['anonymous'] };
    }
    const access = route.config?.access;
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD') registry.push({ method: String(method), url: route.url, access: access ?? [] });
    }
    if (!access) undeclared.push(`${String(route.method)} ${route.url}`);
  });
  app.addHook('onReady', async () => {
    if (undeclared.length) throw new Error(`routes without an access rule: ${undeclared.join(', ')}`);
  });
  app.addHook('onRequest', async (req) => {
    const access = req.routeOptions.config?.access;
    if (!access) return; // unmatched route: the 404 handler answers
    const principal = await resolve(req, access);
    req.principal = principal;
    if (access.includes('anonymous')) return;
    if (!principal) throw new AppError('UNAUTHENTICATED', 'Sign in or present a valid credential.');
    if (!access.includes(principal.kind)) throw new AppError('FORBIDDEN', 'Your credential does not allow this.');
  });
}
