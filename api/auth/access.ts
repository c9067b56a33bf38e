import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { roleGrants, type Permission } from '../../protocol';
import type { FailureBudget, ProvenCredentials } from '../../services/identity/failure-budget';
import type { Principal } from '../../services/principal';
import { AppError } from '../errors';

export type { Principal };
export { actorOf } from '../../services/principal';

export type PrincipalKind = Principal['kind'];
export type AccessKind = 'anonymous' | PrincipalKind;
/**
 * What an admin or service caller needs on a route: a permission (granted to admins by their
 * role, to service tokens by their scopes), or `own-account` for an admin's routes about themself
 * (sign out, own password, own second factor), open to every role and to no token.
 */
export type RoutePermission = Permission | 'own-account';

/** Resolves the caller from the request (cookies, bearer tokens); null when anonymous. */
export type Authenticate = (req: FastifyRequest) => Promise<Principal | null>;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call this route. 'anonymous' makes it public. */
    access?: readonly AccessKind[];
    /** Required when `access` names 'admin' or 'service': what those callers need. */
    permission?: RoutePermission;
    /** Agent routes: this request is made to rotate the agent's credential (the heartbeat). */
    rotatesCredential?: boolean;
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

export type RegisteredRoute = {
  method: string;
  url: string;
  access: readonly AccessKind[];
  permission?: RoutePermission;
};
const ROUTE_REGISTRIES = new WeakMap<object, RegisteredRoute[]>();

/** Every route registered on the app (HEAD twins of GET left out): the authorization matrix walks them all. */
export function registeredRoutes(app: object): RegisteredRoute[] {
  return [...(ROUTE_REGISTRIES.get(app) ?? [])];
}

/**
 * Whether an admin or service principal may use a route needing `need`; a 403 naming what is
 * missing otherwise. A principal whose role or scopes were not read is refused (fail closed).
 */
export function refusalFor(principal: Principal, need: RoutePermission | undefined): AppError | undefined {
  if (principal.kind !== 'admin' && principal.kind !== 'service') return undefined;
  if (need === undefined) return new AppError('FORBIDDEN', 'Your credential does not allow this.');
  if (principal.kind === 'admin') {
    if (need === 'own-account') return undefined;
    if (principal.role && roleGrants(principal.role, need)) return undefined;
    return new AppError('FORBIDDEN', `Your role (${principal.role ?? 'none'}) does not allow this: it needs ${need}.`, [
      { path: 'permission', message: need },
    ]);
  }
  if (need !== 'own-account' && principal.scopes?.includes(need as never)) return undefined;
  return new AppError('FORBIDDEN', `This token lacks the scope ${need}.`, [{ path: 'scope', message: need }]);
}

/** Plugin-registered routes (OpenAPI UI, static files) that are public by nature. */
const PUBLIC_PREFIXES = ['/docs'];

/**
 * Failed authentications spend their client address's budget, checked before any credential is
 * looked up: past it, a request that carries a credential is refused (429) without a lookup, or
 * served as anonymous where the route is public. While only lookups in flight fill it, the request
 * waits for one of them to end (see FailureBudget's `reserve`).
 */
export type AuthFailureLimit = {
  /**
   * The credential material the request carries (authorization header, session cookies), or
   * undefined when it carries none the authenticator would look up.
   */
  presented(req: FastifyRequest): string | undefined;
  /** The budget's key for this request's client (its address, behind trusted proxies). */
  keyOf(req: FastifyRequest): string;
  budget: Pick<FailureBudget, 'reserve' | 'spend'>;
  /** Credentials that authenticated lately: not guesses, so they spend no place (see ProvenCredentials). */
  proven: Pick<ProvenCredentials, 'has' | 'add' | 'forget'>;
};

const digestOf = (material: string): string => createHash('sha256').update(material).digest('hex');

/**
 * Installs deny-by-default access control: authenticate every request to a matched route,
 * then allow it only if the principal's kind is in the route's `access` list and, for admins and
 * service tokens, their role or scopes grant the route's `permission`.
 * 401 when no valid credential was presented, 403 when the credential is of the wrong kind,
 * 429 when the caller's address has failed to authenticate too often, or has too many credentials
 * waiting to be looked up (see AuthFailureLimit).
 */
export function installAccessControl(app: FastifyInstance, authenticate: Authenticate, limit?: AuthFailureLimit): void {
  /** A place in the budget of `req`'s address; a client that goes away while waiting leaves the queue. */
  async function placeFor(guard: AuthFailureLimit, req: FastifyRequest, reply: FastifyReply) {
    const gone = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableEnded) gone.abort();
    };
    reply.raw.once('close', onClose);
    try {
      return await guard.budget.reserve(guard.keyOf(req), gone.signal);
    } finally {
      reply.raw.off('close', onClose);
    }
  }

  async function resolve(
    req: FastifyRequest,
    reply: FastifyReply,
    access: readonly AccessKind[],
  ): Promise<Principal | null> {
    const material = limit?.presented(req);
    if (!limit || material === undefined) return authenticate(req);
    const digest = digestOf(material);
    if (limit.proven.has(digest)) {
      // An outage (a throw) says nothing about the credential: it stays proven.
      const principal = await authenticate(req);
      if (principal) return principal;
      limit.proven.forget(digest);
      limit.budget.spend(limit.keyOf(req));
      return null;
    }
    const place = await placeFor(limit, req, reply);
    if (!place.ok) {
      if (access.includes('anonymous')) return null;
      throw new AppError(
        'RATE_LIMITED',
        place.why === 'failures'
          ? 'Too many failed authentications from your address; try again later.'
          : 'Too many credentials from your address are being checked at once; try again shortly.',
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
    if (principal) {
      place.pass();
      limit.proven.add(digest);
    } else place.fail();
    return principal;
  }

  const undeclared: string[] = [];
  const withoutPermission: string[] = [];
  const registry: RegisteredRoute[] = [];
  ROUTE_REGISTRIES.set(app, registry);
  app.decorateRequest('principal', null);
  app.addHook('onRoute', (route) => {
    if (!route.config?.access && PUBLIC_PREFIXES.some((p) => route.url === p || route.url.startsWith(`${p}/`))) {
      route.config = { ...(route.config ?? {}), access: ['anonymous'] };
    }
    const access = route.config?.access;
    const permission = route.config?.permission;
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD')
        registry.push({
          method: String(method),
          url: route.url,
          access: access ?? [],
          ...(permission ? { permission } : {}),
        });
    }
    if (!access) undeclared.push(`${String(route.method)} ${route.url}`);
    const privileged = access?.includes('admin') || access?.includes('service');
    if (privileged && (!permission || (permission === 'own-account' && access?.includes('service'))))
      withoutPermission.push(`${String(route.method)} ${route.url}`);
  });
  app.addHook('onReady', async () => {
    if (undeclared.length) throw new Error(`routes without an access rule: ${undeclared.join(', ')}`);
    if (withoutPermission.length)
      throw new Error(`admin or service routes without a permission: ${withoutPermission.join(', ')}`);
  });
  app.addHook('onRequest', async (req, reply) => {
    const access = req.routeOptions.config?.access;
    if (!access) return; // unmatched route: the 404 handler answers
    const principal = await resolve(req, reply, access);
    req.principal = principal;
    if (access.includes('anonymous')) return;
    if (!principal) throw new AppError('UNAUTHENTICATED', 'Sign in or present a valid credential.');
    if (!access.includes(principal.kind)) throw new AppError('FORBIDDEN', 'Your credential does not allow this.');
    const refusal = refusalFor(principal, req.routeOptions.config?.permission);
    if (refusal) throw refusal;
  });
}
