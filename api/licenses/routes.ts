import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  customerId,
  featuresInputSchema,
  isoTime,
  LICENSE_STATES,
  licenseId,
  policyId,
  safeString,
} from '../../protocol';
import { LICENSE_ACTIONS } from '../../protocol/views';
import type { AppDeps } from '../app';
import { actorOf, principalOf } from '../auth/access';
import { errorSchema } from '../schemas';
import { toLicenseView } from '../../services/licenses/license-views';

const isoOut = z.string().max(40);

export const licenseViewSchema = z.strictObject({
  id: licenseId,
  customerId,
  plan: z.string().max(100),
  features: z.record(z.string().max(64), z.union([z.boolean(), z.number(), z.string().max(200)])),
  maxAgents: z.number().int(),
  state: z.enum(LICENSE_STATES),
  version: z.number().int().min(1),
  notBefore: isoOut,
  expiresAt: isoOut,
  trialEndsAt: isoOut.nullable(),
  trialEndState: z.enum(['expired', 'grace']),
  graceDays: z.number().int(),
  graceEndsAt: isoOut,
  stateReason: z.string().max(500).nullable(),
  policyId: z.string().max(72).nullable(),
  policyVersion: z.number().int().nullable(),
  createdAt: isoOut,
  updatedAt: isoOut,
});

const snapshotSchema = z.strictObject({
  licenseId,
  customerId,
  state: z.enum(LICENSE_STATES),
  version: z.number().int().min(1),
  expiresAt: isoOut,
  trialEndsAt: isoOut.nullable(),
  graceDays: z.number().int(),
  trialEndState: z.enum(['expired', 'grace']),
  reason: z.string().max(500).nullable(),
  changedAt: isoOut,
  nextTransitionAt: isoOut.nullable(),
});

const workflowLinkSchema = z.strictObject({ id: z.string().max(100), url: z.string().max(2000) });
const detailSchema = z.strictObject({
  license: licenseViewSchema,
  workflow: workflowLinkSchema.extend({ current: snapshotSchema.nullable() }),
  actions: z
    .array(
      z.strictObject({ action: z.enum(LICENSE_ACTIONS), allowed: z.boolean(), reason: z.string().max(500).nullable() }),
    )
    .describe('The changes the lifecycle accepts in the current state; for the others, why not.'),
});
const changedSchema = z.strictObject({ license: licenseViewSchema, workflow: snapshotSchema });
const createdSchema = z.strictObject({
  license: licenseViewSchema,
  created: z.boolean(),
  workflow: workflowLinkSchema,
});
const listSchema = z.strictObject({ items: z.array(licenseViewSchema), nextCursor: z.string().max(300).nullable() });

export const createLicenseBody = z
  .strictObject({
    id: licenseId
      .optional()
      .describe('Optional client-chosen id: repeating the request with it cannot create a second license.'),
    customerId,
    policyId: policyId
      .optional()
      .describe(
        "Copy the policy's current terms (recorded on the license with the version); fields given here override them.",
      ),
    plan: safeString(100).trim().min(1).optional().describe('Required unless a policy gives it.'),
    features: featuresInputSchema
      .optional()
      .describe(
        'Omitted: the policy’s features, or with no policy every task kind granted (tasks.echo, tasks.sleep, tasks.http_get written as true). Given: exactly these, every task kind not named written as false.',
      ),
    maxAgents: z.number().int().min(1).max(100000).optional().describe('Required unless a policy gives it.'),
    trial: z.strictObject({ days: z.number().int().min(1).max(365).optional(), endsAt: isoTime.optional() }).optional(),
    term: z
      .strictObject({ days: z.number().int().min(1).max(3650).optional(), expiresAt: isoTime.optional() })
      .optional(),
    graceDays: z.number().int().min(0).max(365).optional().describe('Default 7 (or the policy’s).'),
    trialEndState: z
      .enum(['expired', 'grace'])
      .optional()
      .describe('Where a trial goes when it ends unconverted. Default expired (or the policy’s).'),
    notBefore: isoTime.optional(),
  })
  .refine((b) => b.trial === undefined || b.term === undefined, {
    message: 'Give at most one of trial and term.',
    path: ['term'],
  })
  .refine((b) => b.policyId !== undefined || (b.trial === undefined) !== (b.term === undefined), {
    message: 'Give exactly one of trial and term (or a policyId).',
    path: ['term'],
  });
export type CreateLicenseBody = z.infer<typeof createLicenseBody>;

const idParams = z.strictObject({ id: licenseId });
/** Optional `Idempotency-Key`: a retried change with the same key is applied once. */
const changeHeaders = z.object({
  'idempotency-key': safeString(100)
    .regex(/^[A-Za-z0-9._:-]{8,100}$/, 'must be 8-100 characters of [A-Za-z0-9._:-]')
    .optional(),
});
const keyOf = (req: { headers: { 'idempotency-key'?: string | undefined } }) => ({
  idempotencyKey: req.headers['idempotency-key'],
});
const reasonBody = z.strictObject({ reason: safeString(500, { multiline: true }).trim().min(1) });
const expiresBody = z.strictObject({ expiresAt: isoTime });
const emptyBody = z.strictObject({}).optional();
export const termsBody = z
  .strictObject({
    plan: safeString(100).trim().min(1).optional(),
    features: featuresInputSchema.optional().describe('Replaces the whole map.'),
    maxAgents: z.number().int().min(1).max(100000).optional(),
    graceDays: z.number().int().min(0).max(365).optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), {
    message: 'Give at least one of plan, features, maxAgents and graceDays.',
  });
const listQuery = z.strictObject({
  state: z.enum(LICENSE_STATES).optional(),
  cursor: safeString(300).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
const adminListQuery = listQuery.extend({ customerId: customerId.optional() });

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };
const changeErrors = { ...errors, 409: errorSchema, 503: errorSchema };

/**
 * /v1/admin/licenses (admin, service): create, list, get, renew, convert-trial, suspend, resume,
 * revoke — every change through the license's workflow. /v1/portal/licenses (customer): its own.
 */
export function licenseRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  const service = deps.services.licenses;
  return async (app) => {
    const read = { access: ['admin', 'service'] as const, permission: 'licenses:read' as const };
    const write = { access: ['admin', 'service'] as const, permission: 'licenses:write' as const };
    const tags = ['licenses'];

    app.post(
      '/v1/admin/licenses',
      {
        schema: {
          tags,
          summary: 'Create a license and start its lifecycle',
          body: createLicenseBody,
          response: { 200: createdSchema, 201: createdSchema, ...changeErrors },
        },
        config: write,
      },
      async (req, reply) => {
        const input = await deps.services.policies.resolveLicenseInput(req.body);
        const result = await service.createLicense(actorOf(principalOf(req, 'admin', 'service')), input);
        return reply.status(result.created ? 201 : 200).send(result);
      },
    );

    app.get(
      '/v1/admin/licenses',
      {
        schema: {
          tags,
          summary: 'List licenses, newest first',
          querystring: adminListQuery,
          response: { 200: listSchema, ...errors },
        },
        config: read,
      },
      async (req) => service.listLicenses(req.query),
    );

    app.get(
      '/v1/admin/licenses/:id',
      {
        schema: {
          tags,
          summary: 'A license, its lifecycle state and its Temporal Web link',
          params: idParams,
          response: { 200: detailSchema, ...errors },
        },
        config: read,
      },
      async (req) => service.getLicense(req.params.id),
    );

    const actor = (req: Parameters<typeof principalOf>[0]) => actorOf(principalOf(req, 'admin', 'service'));

    app.post(
      '/v1/admin/licenses/:id/renew',
      {
        schema: {
          tags,
          summary: 'Move the expiry later (from active, grace, expired or suspended)',
          params: idParams,
          headers: changeHeaders,
          body: expiresBody,
          response: { 200: changedSchema, ...changeErrors },
        },
        config: write,
      },
      async (req) => service.renewLicense(req.params.id, actor(req), req.body.expiresAt, keyOf(req)),
    );

    app.post(
      '/v1/admin/licenses/:id/convert-trial',
      {
        schema: {
          tags,
          summary: 'Convert a trial into a paid term',
          params: idParams,
          headers: changeHeaders,
          body: expiresBody,
          response: { 200: changedSchema, ...changeErrors },
        },
        config: write,
      },
      async (req) => service.convertTrial(req.params.id, actor(req), req.body.expiresAt, keyOf(req)),
    );

    app.post(
      '/v1/admin/licenses/:id/suspend',
      {
        schema: {
          tags,
          summary: 'Suspend a trial, active or grace license',
          params: idParams,
          headers: changeHeaders,
          body: reasonBody,
          response: { 200: changedSchema, ...changeErrors },
        },
        config: write,
      },
      async (req) => service.suspendLicense(req.params.id, actor(req), req.body.reason, keyOf(req)),
    );

    app.post(
      '/v1/admin/licenses/:id/resume',
      {
        schema: {
          tags,
          summary: 'Resume a suspended license into the state its dates say',
          params: idParams,
          headers: changeHeaders,
          body: emptyBody,
          response: { 200: changedSchema, ...changeErrors },
        },
        config: write,
      },
      async (req) => service.resumeLicense(req.params.id, actor(req), keyOf(req)),
    );

    app.post(
      '/v1/admin/licenses/:id/revoke',
      {
        schema: {
          tags,
          summary: 'Revoke a license for good',
          params: idParams,
          headers: changeHeaders,
          body: reasonBody,
          response: { 200: changedSchema, ...changeErrors },
        },
        config: write,
      },
      async (req) => service.revokeLicense(req.params.id, actor(req), req.body.reason, keyOf(req)),
    );

    app.patch(
      '/v1/admin/licenses/:id',
      {
        schema: {
          tags,
          summary: 'Change plan, features, maxAgents or graceDays (the version rises; agents get the new document)',
          params: idParams,
          headers: changeHeaders,
          body: termsBody,
          response: { 200: changedSchema, ...changeErrors },
        },
        // Admins only: a service token may renew or suspend, not rewrite what a customer bought.
        config: { access: ['admin'], permission: 'licenses:write' },
      },
      async (req) => service.changeTerms(req.params.id, actorOf(principalOf(req, 'admin')), req.body, keyOf(req)),
    );

    app.get(
      '/v1/portal/licenses',
      {
        schema: {
          tags,
          summary: "The signed-in customer's licenses",
          querystring: listQuery,
          response: { 200: listSchema, ...errors },
        },
        config: { access: ['customer'] },
      },
      async (req) => service.listLicenses({ ...req.query, customerId: principalOf(req, 'customer').customerId }),
    );

    app.get(
      '/v1/portal/licenses/:id',
      {
        schema: {
          tags,
          summary: "One of the signed-in customer's licenses",
          params: idParams,
          response: { 200: z.strictObject({ license: licenseViewSchema }), ...errors },
        },
        config: { access: ['customer'] },
      },
      async (req) => ({
        license: toLicenseView(
          await service.getLicenseRow(req.params.id, { customerId: principalOf(req, 'customer').customerId }),
        ),
      }),
    );
  };
}
