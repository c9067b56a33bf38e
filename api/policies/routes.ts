import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { featuresInputSchema, POLICY_KINDS, policyId, safeString, UPDATE_POLICIES } from '../../protocol';
import type { AppDeps } from '../app';
import { actorOf, principalOf } from '../auth/access';
import { errorSchema } from '../schemas';

const isoOut = z.string().max(40);
const featuresOut = z.record(z.string().max(64), z.union([z.boolean(), z.number(), z.string().max(200)]));
const termsOut = {
  plan: z.string().max(100),
  kind: z.enum(POLICY_KINDS),
  durationDays: z.number().int(),
  graceDays: z.number().int(),
  trialEndState: z.enum(['expired', 'grace']),
  maxAgents: z.number().int(),
  features: featuresOut,
  seatReclaimDays: z.number().int(),
  updatePolicy: z.enum(UPDATE_POLICIES),
};
const policySchema = z.strictObject({
  id: policyId,
  name: z.string().max(100),
  version: z.number().int().min(1),
  archivedAt: isoOut.nullable(),
  createdAt: isoOut,
  updatedAt: isoOut,
  licenseCount: z.number().int(),
  ...termsOut,
});
const versionSchema = z.strictObject({
  version: z.number().int().min(1),
  name: z.string().max(100),
  createdAt: isoOut,
  createdBy: z.strictObject({ kind: z.string().max(20), id: z.string().max(200) }),
  ...termsOut,
});
const applySchema = z.strictObject({
  policyId,
  policyVersion: z.number().int(),
  results: z.array(
    z.strictObject({
      licenseId: z.string().max(72),
      outcome: z.enum(['changed', 'unchanged', 'refused', 'failed']),
      version: z.number().int().nullable(),
      message: z.string().max(1000).nullable(),
    }),
  ),
});

/** The editable terms of a policy; every field optional in an update. */
const termsIn = {
  name: safeString(100).trim().min(1),
  plan: safeString(100).trim().min(1).optional().describe('The plan its licenses get; default the name.'),
  kind: z.enum(POLICY_KINDS).describe('Licenses start as a trial or as a paid term.'),
  durationDays: z.number().int().min(1).max(3650).describe('Length of the trial (at most 365) or the term.'),
  graceDays: z.number().int().min(0).max(365).optional().describe('Default 7.'),
  trialEndState: z.enum(['expired', 'grace']).optional().describe('Where an unconverted trial goes. Default expired.'),
  maxAgents: z.number().int().min(1).max(100000),
  features: featuresInputSchema.optional(),
  seatReclaimDays: z
    .number()
    .int()
    .min(0)
    .max(365)
    .optional()
    .describe('Days an agent may stay offline before its seat is reclaimed; 0 = never. Default 14.'),
  updatePolicy: z.enum(UPDATE_POLICIES).optional().describe('How agents take new releases. Default automatic.'),
};
export const createPolicyBody = z.strictObject(termsIn);
export const updatePolicyBody = z
  .strictObject({
    ...termsIn,
    name: termsIn.name.optional(),
    kind: termsIn.kind.optional(),
    durationDays: termsIn.durationDays.optional(),
    maxAgents: termsIn.maxAgents.optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'Give at least one field to change.' });

const idParams = z.strictObject({ id: policyId });
const listQuery = z.strictObject({
  archived: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true')
    .describe('Include archived policies.'),
});
const applyHeaders = z.object({
  'idempotency-key': safeString(100)
    .regex(/^[A-Za-z0-9._:-]{8,100}$/, 'must be 8-100 characters of [A-Za-z0-9._:-]')
    .optional(),
});
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };

/** /v1/admin/policies (admins): named license templates, versioned, archived instead of deleted. */
export function policyRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  const service = deps.services.policies;
  return async (app) => {
    const read = { access: ['admin'] as const, permission: 'licenses:read' as const };
    const write = { access: ['admin'] as const, permission: 'licenses:write' as const };
    const tags = ['policies'];
    const actor = (req: Parameters<typeof principalOf>[0]) => actorOf(principalOf(req, 'admin'));

    app.post(
      '/v1/admin/policies',
      {
        schema: {
          tags,
          summary: 'Create a policy (version 1)',
          body: createPolicyBody,
          response: { 201: policySchema, ...errors },
        },
        config: write,
      },
      async (req, reply) => reply.status(201).send(await service.createPolicy(actor(req), req.body)),
    );

    app.get(
      '/v1/admin/policies',
      {
        schema: {
          tags,
          summary: 'List policies by name',
          querystring: listQuery,
          response: { 200: z.strictObject({ items: z.array(policySchema) }), ...errors },
        },
        config: read,
      },
      async (req) => service.listPolicies({ archived: req.query.archived }),
    );

    app.get(
      '/v1/admin/policies/:id',
      {
        schema: {
          tags,
          summary: 'A policy and all its versions, newest first',
          params: idParams,
          response: { 200: z.strictObject({ policy: policySchema, versions: z.array(versionSchema) }), ...errors },
        },
        config: read,
      },
      async (req) => service.getPolicy(req.params.id),
    );

    app.patch(
      '/v1/admin/policies/:id',
      {
        schema: {
          tags,
          summary: 'Change a policy: writes a new version; existing licenses keep theirs until it is applied',
          params: idParams,
          body: updatePolicyBody,
          response: { 200: policySchema, ...errors },
        },
        config: write,
      },
      async (req) => service.updatePolicy(actor(req), req.params.id, req.body),
    );

    app.post(
      '/v1/admin/policies/:id/archive',
      {
        schema: {
          tags,
          summary: 'Archive a policy: it stays readable, makes no new licenses and takes no changes',
          params: idParams,
          body: z.strictObject({}).optional(),
          response: { 200: policySchema, ...errors },
        },
        config: write,
      },
      async (req) => service.archivePolicy(actor(req), req.params.id),
    );

    app.post(
      '/v1/admin/policies/:id/apply',
      {
        schema: {
          tags,
          summary:
            "Apply the policy's current plan, features, maxAgents and graceDays to each of its licenses, through each lifecycle",
          params: idParams,
          headers: applyHeaders,
          body: z.strictObject({}).optional(),
          response: { 200: applySchema, ...errors, 503: errorSchema },
        },
        config: write,
      },
      async (req) => service.applyPolicy(actor(req), req.params.id, { idempotencyKey: req.headers['idempotency-key'] }),
    );
  };
}
