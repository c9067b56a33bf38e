import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { agentId, licenseId, releaseVersionSchema, UPDATE_POLICY_MODES } from '../../protocol';
import type { AppDeps } from '../app';
import { principalOf } from '../auth/access';
import { errorSchema } from '../schemas';

const setting = z
  .strictObject({ policy: z.enum(UPDATE_POLICY_MODES), pinnedVersion: z.string().max(80).nullable() })
  .nullable();
const updatePolicyViewSchema = z.strictObject({
  kind: z.enum(['license', 'agent']),
  id: z.string().max(80),
  own: setting.describe("This level's own setting; null inherits (agent → license → policy version → automatic)."),
  effective: z.strictObject({
    policy: z.enum(UPDATE_POLICY_MODES),
    pinnedVersion: z.string().max(80).nullable(),
    source: z.enum(['agent', 'license', 'policy', 'default']),
  }),
});
const setBody = z
  .strictObject({
    policy: z.enum([...UPDATE_POLICY_MODES, 'inherit']),
    version: releaseVersionSchema
      .optional()
      .describe('The pinned release; only with policy "pinned", and required there.'),
  })
  .refine((b) => (b.policy === 'pinned') === (b.version !== undefined), {
    message: 'version is required with policy "pinned" and allowed only there',
    path: ['version'],
  });
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };

/**
 * GET and PUT /v1/admin/{licenses,agents}/:id/update-policy: how the agents of a license, or one
 * agent, take new releases, over the policy version's (audited `*.update_policy_set`).
 */
export function updatePolicyRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const service = deps.services.updatePolicies;
    for (const [kind, resource, id] of [
      ['agent', 'agents', agentId],
      ['license', 'licenses', licenseId],
    ] as const) {
      const params = z.strictObject({ id });
      app.get(
        `/v1/admin/${resource}/:id/update-policy`,
        {
          schema: {
            tags: ['admin'],
            summary: `The ${kind}'s update policy: its own setting and the one in force`,
            params,
            response: { 200: updatePolicyViewSchema, ...errors },
          },
          config: { access: ['admin', 'service'], permission: `${resource}:read` },
        },
        async (req) => service.get({ kind, id: req.params.id }),
      );
      app.put(
        `/v1/admin/${resource}/:id/update-policy`,
        {
          schema: {
            tags: ['admin'],
            summary: `Set the ${kind}'s update policy: automatic, manual (admin-approved), pinned to a version, or inherit (audited ${kind}.update_policy_set)`,
            params,
            body: setBody,
            response: { 200: updatePolicyViewSchema, ...errors, 409: errorSchema },
          },
          config: { access: ['admin'], permission: `${resource}:write` },
        },
        async (req) => service.set(principalOf(req, 'admin'), { kind, id: req.params.id }, req.body),
      );
    }
  };
}
