import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  agentId,
  AGENT_STATUSES,
  customerId,
  FINGERPRINT_COMPONENTS,
  hex64,
  LICENSE_STATES,
  licenseId,
  releaseVersionSchema,
} from '../../protocol';
import type { AppDeps } from '../app';
import { principalOf } from '../auth/access';
import { emptyBody, errorSchema } from '../schemas';

const isoOut = z.string().max(40);
export const agentViewSchema = z.strictObject({
  id: agentId,
  licenseId,
  customerId,
  status: z.enum(AGENT_STATUSES),
  statusVersion: z.number().int().min(0),
  statusReason: z.string().max(500).nullable(),
  licenseState: z.enum(LICENSE_STATES),
  agentVersion: z.string().max(50).nullable(),
  runtimeHash: hex64.nullable(),
  update: z.strictObject({ outcome: z.string().max(20), reason: z.string().max(20).nullable(), at: isoOut }).nullable(),
  wantedVersion: z
    .string()
    .max(80)
    .nullable()
    .describe('The release an admin asked this agent to install (POST /:id/update), until it reports running it.'),
  fingerprintScore: z.number().int().min(0).max(100).nullable(),
  changedComponents: z.array(z.enum(FINGERPRINT_COMPONENTS)),
  inFlightTasks: z.number().int().min(0),
  hostnameHint: z.string().max(255).nullable(),
  reportedTerminalReason: z
    .string()
    .max(200)
    .nullable()
    .describe("The agent's own last word: terminal, and why (its journal's reason); null while it reports none."),
  reportedTerminalAt: isoOut.nullable(),
  acknowledgedStatusVersion: z
    .number()
    .int()
    .min(0)
    .nullable()
    .describe('The status version the agent last accepted, from its heartbeat; null while it reports none.'),
  lastHeartbeatAt: isoOut.nullable(),
  createdAt: isoOut,
  deregisteredAt: isoOut.nullable(),
});
export type AgentViewBody = z.infer<typeof agentViewSchema>;
const agentListSchema = z.strictObject({ items: z.array(agentViewSchema), nextCursor: agentId.nullable() });
const listQuery = z.strictObject({
  status: z.enum(AGENT_STATUSES).optional(),
  licenseId: licenseId.optional(),
  after: agentId.optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
});
const adminListQuery = listQuery.extend({ customerId: customerId.optional() });
const idParams = z.strictObject({ id: agentId });
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };

/** GET /v1/admin/agents (+ /:id, POST /:id/release|update) and GET /v1/portal/agents (+ /:id): a customer sees only its own. */
export function agentsRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const agents = deps.services.agents;

    app.get(
      '/v1/admin/agents',
      {
        schema: {
          tags: ['admin'],
          summary: 'List agents',
          querystring: adminListQuery,
          response: { 200: agentListSchema, ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'agents:read' },
      },
      async (req) => agents.list(principalOf(req, 'admin', 'service'), req.query),
    );

    app.get(
      '/v1/admin/agents/:id',
      {
        schema: {
          tags: ['admin'],
          summary: 'One agent',
          params: idParams,
          response: { 200: agentViewSchema, ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'agents:read' },
      },
      async (req) => agents.get(principalOf(req, 'admin', 'service'), req.params.id),
    );

    app.post(
      '/v1/admin/agents/:id/release',
      {
        schema: {
          tags: ['admin'],
          summary: 'Release a quarantined agent (audited agent.released)',
          params: idParams,
          body: emptyBody,
          response: { 200: agentViewSchema, ...errors, 409: errorSchema, 503: errorSchema },
        },
        config: { access: ['admin'], permission: 'agents:write' },
      },
      async (req) => agents.release(principalOf(req, 'admin'), req.params.id),
    );

    app.post(
      '/v1/admin/agents/:id/update',
      {
        schema: {
          tags: ['admin'],
          summary:
            'Ask the agent to install one published release (audited agent.update_requested); never a yanked one, never a downgrade',
          params: idParams,
          body: z.strictObject({ version: releaseVersionSchema }),
          response: { 200: agentViewSchema, ...errors, 409: errorSchema },
        },
        config: { access: ['admin'], permission: 'agents:write' },
      },
      async (req) =>
        deps.services.agentUpdates.requestUpdate(principalOf(req, 'admin'), req.params.id, req.body.version),
    );

    for (const [scope, kind] of [
      ['admin', 'admin'],
      ['portal', 'customer'],
    ] as const) {
      app.post(
        `/v1/${scope}/agents/:id/deregister`,
        {
          schema: {
            tags: [scope],
            summary:
              'Deregister an agent (lost or retired machine): frees its license seat, cancels its open tasks, its credential stops working',
            params: idParams,
            body: emptyBody,
            response: { 200: agentViewSchema, ...errors, 409: errorSchema },
          },
          config: kind === 'admin' ? { access: ['admin', 'service'], permission: 'agents:write' } : { access: [kind] },
        },
        async (req) =>
          agents.deregister(
            kind === 'admin' ? principalOf(req, 'admin', 'service') : principalOf(req, kind),
            req.params.id,
          ),
      );
    }

    app.get(
      '/v1/portal/agents',
      {
        schema: {
          tags: ['portal'],
          summary: "Your organisation's agents",
          querystring: listQuery,
          response: { 200: agentListSchema, ...errors },
        },
        config: { access: ['customer'] },
      },
      async (req) => agents.list(principalOf(req, 'customer'), req.query),
    );

    app.get(
      '/v1/portal/agents/:id',
      {
        schema: {
          tags: ['portal'],
          summary: 'One of your agents',
          params: idParams,
          response: { 200: agentViewSchema, ...errors },
        },
        config: { access: ['customer'] },
      },
      async (req) => agents.get(principalOf(req, 'customer'), req.params.id),
    );
  };
}
