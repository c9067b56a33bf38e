import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ADMIN_ROLES, idSchema } from '../../protocol';
import { principalOf } from '../auth/access';
import { errorSchema } from '../schemas';
import { emptyBody, secondFactorCode } from './schemas';
import type { Services } from '../../services';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };
const security: Array<Record<string, string[]>> = [{ adminSession: [] }];
const policySchema = z.object(
  Object.fromEntries(ADMIN_ROLES.map((r) => [r, z.boolean()])) as Record<(typeof ADMIN_ROLES)[number], z.ZodBoolean>,
);
const policyBody = policySchema.strict();

/**
 * An admin's own second factor (enrol, confirm, status), an owner's reset of another's, and which
 * roles must have one. The secret is in the enrolment answer only; nothing answers it again.
 */
export function secondFactorRoutes(services: Services['identity']): FastifyPluginAsyncZod {
  const f = services.secondFactors;
  return async (app) => {
    app.get(
      '/v1/admin/me/totp',
      {
        schema: {
          tags: ['admin auth'],
          summary: 'Whether you have a second factor, and how many recovery codes are left',
          security,
          response: { 200: z.object({ enrolled: z.boolean(), recoveryCodesLeft: z.number().int() }), ...errors },
        },
        config: { access: ['admin'], permission: 'own-account' },
      },
      async (req) => f.status('admin', principalOf(req, 'admin').id),
    );

    app.post(
      '/v1/admin/me/totp',
      {
        schema: {
          tags: ['admin auth'],
          summary:
            'Start enrolling a TOTP second factor: the secret, shown once as an otpauth URI and a QR code; confirm with a first code',
          security,
          body: emptyBody,
          response: {
            201: z.object({ otpauthUri: z.string(), secret: z.string(), qrCode: z.string() }),
            ...errors,
          },
        },
        config: { access: ['admin'], permission: 'own-account' },
      },
      async (req, reply) => {
        void reply.header('cache-control', 'no-store');
        return reply.status(201).send(await f.beginEnrolment(principalOf(req, 'admin')));
      },
    );

    app.post(
      '/v1/admin/me/totp/confirm',
      {
        schema: {
          tags: ['admin auth'],
          summary: 'Confirm enrolment with a first code; answers ten single-use recovery codes, once',
          security,
          body: z.object({ code: secondFactorCode }).strict(),
          response: { 200: z.object({ recoveryCodes: z.array(z.string()) }), ...errors },
        },
        config: { access: ['admin'], permission: 'own-account' },
      },
      async (req, reply) => {
        void reply.header('cache-control', 'no-store');
        return f.confirmEnrolment(principalOf(req, 'admin'), req.body.code);
      },
    );

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
