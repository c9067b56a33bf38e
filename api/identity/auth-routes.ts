import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../auth/access';
import { AppError } from '../errors';
import { errorSchema } from '../schemas';
import {
  changePasswordBody,
  customerUserSchema,
  emptyBody,
  loginBody,
  meAdminSchema,
  okSchema,
  passwordChangedSchema,
  sessionInfoSchema,
} from './schemas';
import type { Services } from '../../services';
import { SESSION_IDLE_MS, SESSION_MAX_MS } from '../../services/identity/session-service';
import { clientAddressKey } from '../../services/identity/failure-budget';
import { clearedCookie, sessionCookie } from './cookies';

/**
 * Per client address (IPv6 per /64), per route: one client cannot guess quickly across many
 * accounts. Per account, the login service's failure budget applies too.
 */
export const LOGIN_RATE_LIMIT = {
  max: 10,
  timeWindow: 60_000,
  keyGenerator: (req: FastifyRequest) => clientAddressKey(req.ip),
};

/** One answer for unknown email, wrong password, inactive account and locked account. */
const LOGIN_REFUSED = 'The email or password is not correct.';
/** The password was right and the account has a second factor: send again with `code`. */
const SECOND_FACTOR_REQUIRED = 'Enter the code from your authenticator app, or a recovery code.';
/** This address has used up its failed sign-ins for this email (known or not) for now. */
const LOGIN_THROTTLED = 'Too many failed sign-ins with this email from your address; try again later.';

export type AuthGroup = {
  kind: 'admin' | 'customer';
  prefix: '/v1/admin' | '/v1/portal';
  cookie: string;
  tag: string;
  security: string;
};

function noStore(reply: FastifyReply): void {
  void reply.header('cache-control', 'no-store');
}

function meta(req: FastifyRequest) {
  const ua = req.headers['user-agent'];
  return { ip: req.ip, userAgent: typeof ua === 'string' ? ua.slice(0, 300) : null };
}

/** login, logout, me and change-own-password for one kind of account (admin or portal user). */
export function authRoutes(group: AuthGroup, services: Services['identity']): FastifyPluginAsyncZod {
  const account = group.kind === 'admin' ? meAdminSchema : customerUserSchema.extend({ customerName: z.string() });
  const security: Array<Record<string, string[]>> = [{ [group.security]: [] }];
  // Every admin role may act on its own account (customers have no roles).
  const ownAccount = group.kind === 'admin' ? { permission: 'own-account' as const } : {};
  return async (app) => {
    app.post(
      `${group.prefix}/login`,
      {
        schema: {
          tags: [group.tag],
          summary:
            'Sign in with email and password (and `code`, a TOTP or recovery code, when a second factor is enrolled); sets the session cookie',
          body: loginBody,
          response: {
            200: z.object({ account, session: sessionInfoSchema }),
            400: errorSchema,
            401: errorSchema,
            429: errorSchema,
          },
        },
        config: { access: ['anonymous'], rateLimit: LOGIN_RATE_LIMIT },
      },
      async (req, reply) => {
        noStore(reply);
        const result = await services.login.login(
          group.kind,
          req.body.email,
          req.body.password,
          meta(req),
          req.body.code,
        );
        if (!result.ok) {
          // Only the right password of an account with a second factor gets here; it still counted as a failure.
          if (result.secondFactorRequired)
            throw new AppError('UNAUTHENTICATED', SECOND_FACTOR_REQUIRED, [{ path: 'body.code', message: 'required' }]);
          if (result.throttledForSeconds !== undefined)
            throw new AppError('RATE_LIMITED', LOGIN_THROTTLED, undefined, {
              'retry-after': String(result.throttledForSeconds),
            });
          // No Retry-After, ever: it would tell a locked (so existing) account from an unknown one.
          throw new AppError('UNAUTHENTICATED', LOGIN_REFUSED);
        }
        const { session, account: acc } = result;
        void reply.header('set-cookie', sessionCookie(group.cookie, session.token, Math.floor(SESSION_MAX_MS / 1000)));
        const principal =
          group.kind === 'admin'
            ? { kind: 'admin' as const, id: acc.id, sessionId: session.id }
            : { kind: 'customer' as const, id: acc.id, customerId: acc.customerId!, sessionId: session.id };
        return {
          account: await services.accounts.me(principal),
          session: { expiresAt: session.expiresAt.toISOString(), idleTimeoutSeconds: SESSION_IDLE_MS / 1000 },
        };
      },
    );

    app.post(
      `${group.prefix}/logout`,
      {
        schema: {
          tags: [group.tag],
          summary: 'End this session',
          security,
          body: emptyBody,
          response: { 200: okSchema, 401: errorSchema, 403: errorSchema },
        },
        config: { access: [group.kind], ...ownAccount },
      },
      async (req, reply) => {
        await services.accounts.logout(principalOf(req, group.kind));
        void reply.header('set-cookie', clearedCookie(group.cookie));
        return { ok: true as const };
      },
    );

    app.get(
      `${group.prefix}/me`,
      {
        schema: {
          tags: [group.tag],
          summary: 'The signed-in account',
          security,
          response: { 200: account, 401: errorSchema, 403: errorSchema },
        },
        config: { access: [group.kind], ...ownAccount },
      },
      async (req, reply) => {
        noStore(reply);
        return services.accounts.me(principalOf(req, group.kind));
      },
    );

    app.post(
      `${group.prefix}/me/password`,
      {
        schema: {
          tags: [group.tag],
          summary: 'Change your own password; ends your other sessions',
          security,
          body: changePasswordBody,
          response: {
            200: passwordChangedSchema,
            400: errorSchema,
            401: errorSchema,
            403: errorSchema,
            429: errorSchema,
          },
        },
        config: { access: [group.kind], ...ownAccount, rateLimit: LOGIN_RATE_LIMIT },
      },
      async (req) => {
        return services.accounts.changeOwnPassword(
          principalOf(req, group.kind),
          req.body.currentPassword,
          req.body.newPassword,
        );
      },
    );
  };
}
