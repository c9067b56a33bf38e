import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ADMIN_ROLES, idSchema } from '../../protocol';
import { principalOf } from '../auth/access';
import { errorSchema } from '../schemas';
import { emptyBody, secondFactorCode } from './schemas';
import type { Services } from '../../services';
import type { AuthGroup } from './auth-routes';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };
const security: Array<Record<string, string[]>> = [{ adminSession: [] }];
const policySchema = z.object(
  Object.fromEntries(ADMIN_ROLES.map((r) => [r, z.boolean()])) as Record<(typeof ADMIN_ROLES)[number], z.ZodBoolean>,
);
const policyBody = policySchema.strict();

/**
 * Your own second factor (status, enrol, confirm), for an admin (/v1/admin/me/totp) or a portal user
 * (/v1/portal/me/totp). The secret is in the enrolment answer only; nothing answers it again.
 */
export function ownSecondFactorRoutes(group: AuthGroup, services: Services['identity']): FastifyPluginAsyncZod {
  const f = services.secondFactors;
  const security: Array<Record<string, string[]>> = [{ [group.security]: [] }];
  // Every admin role may act on its own account (customers have no roles).
  const ownAccount = group.kind === 'admin' ? { permission: 'own-account' as const } : {};
  return async (app) => {
    app.get(
      `${group.prefix}/me/totp`,
      {
        schema: {
          tags: [group.tag],
          summary: 'Whether you have a second factor, and how many recovery codes are left',
          security,
          response: { 200: z.object({ enrolled: z.boolean(), recoveryCodesLeft: z.number().int() }), ...errors },
        },
        config: { access: [group.kind], ...ownAccount },
      },
      async (req) => f.status(group.kind, principalOf(req, group.kind).id),
    );

    app.post(
      `${group.prefix}/me/totp`,
      {
        schema: {
          tags: [group.tag],
          summary:
            'Start enrolling a TOTP second factor: the secret, shown once as an otpauth URI and a QR code; confirm with a first code',
          security,
          body: emptyBody,
          response: {
            201: z.object({ otpauthUri: z.string(), secret: z.string(), qrCode: z.string() }),
            ...errors,
          },
        },
        config: { access: [group.kind], ...ownAccount },
      },
      async (req, reply) => {
        void reply.header('cache-control', 'no-store');
        return reply.status(201).send(await f.beginEnrolment(principalOf(req, group.kind)));
      },
    );

    app.post(
      `${group.prefix}/me/totp/confirm`,
      {
        schema: {
          tags: [group.tag],
          summary: 'Confirm enrolment with a first code; answers ten single-use recovery codes, once',
          security,
          body: z.object({ code: secondFactorCode }).strict(),
          response: { 200: z.object({ recoveryCodes: z.array(z.string()) }), ...errors },
        },
        config: { access: [group.kind], ...ownAccount },
      },
      async (req, reply) => {
        void reply.header('cache-control', 'no-store');
        return f.confirmEnrolment(principalOf(req, group.kind), req.body.code);
      },
    );
  };
}

/** An owner's reset of an admin's second factor, and which admin roles must have one. */
export function secondFactorRoutes(services: Services['identity']): FastifyPluginAsyncZod {
  const f = services.secondFactors;
  return async (app) => {
    app.post(
      '/v1/admin/admins/:id/totp/reset',
      {
        schema: {
          tags: ['admins'],
          summary: 'Remove an admin’s second factor and recovery codes (a lost device); they enrol again',
          security,
          params: z.object({ id: idSchema('adm') }).strict(),
          body: emptyBody,
          response: { 200: z.object({ reset: z.boolean() }), ...errors },
        },
        config: { access: ['admin'], permission: 'admins:write' },
      },
      async (req) => f.reset(principalOf(req, 'admin'), req.params.id),
    );

    app.get(
      '/v1/admin/totp-policy',
      {
        schema: {
          tags: ['admins'],
          summary: 'Which admin roles must sign in with a second factor',
          security,
          response: { 200: policySchema, ...errors },
        },
        config: { access: ['admin'], permission: 'admins:read' },
      },
      async () => f.policy(),
    );

    app.post(
      '/v1/admin/totp-policy',
      {
        schema: {
          tags: ['admins'],
          summary:
            'Set which admin roles must sign in with a second factor; an admin of such a role without one can only enrol until they do',
          security,
          body: policyBody,
          response: { 200: policySchema, ...errors },
        },
        config: { access: ['admin'], permission: 'admins:write' },
      },
      async (req) => f.setPolicy(principalOf(req, 'admin'), req.body),
    );
  };
}
