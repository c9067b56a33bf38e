import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  activationTokenSchema,
  agentId,
  offlineActivationRequestSchema,
  offlineActivationResponseSchema,
  STATUS_FILE_MAX_DAYS,
  statusFileSchema,
} from '../../protocol';
import type { AppDeps } from '../app';
import { actorOf, principalOf } from '../auth/access';
import { errorSchema } from '../schemas';
import { activationErrors } from './routes';

export const offlineResponseBodySchema = z.strictObject({
  /** The request file the agent wrote (`agentina-agent activate --offline-request`). */
  request: offlineActivationRequestSchema,
  /** The activation token named by the request's tokenId; spent by this call. */
  token: activationTokenSchema,
});
export const statusFileBodySchema = z.strictObject({
  validForDays: z.number().int().min(1).max(STATUS_FILE_MAX_DAYS),
});

const errors = { ...activationErrors, 410: errorSchema };

/**
 * Air-gapped activation and renewal: an agent's request file plus its token become a signed
 * response (admins and service accounts: any license; the portal: the customer's own tokens),
 * and an admin issues a signed status file for an agent that never connects.
 */
export function offlineRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const offline = deps.services.offlineActivation;
    const summary =
      'Turn an air-gapped agent request and its activation token into a signed response (spends the token)';

    for (const [scope, kind] of [
      ['admin', 'admin'],
      ['portal', 'customer'],
    ] as const) {
      app.post(
        `/v1/${scope}/activation-tokens/offline-response`,
        {
          schema: {
            tags: ['activation'],
            summary: kind === 'admin' ? summary : `${summary}; only your own tokens`,
            body: offlineResponseBodySchema,
            response: { 200: offlineActivationResponseSchema, ...errors },
          },
          config:
            kind === 'admin'
              ? { access: ['admin', 'service'], permission: 'licenses:write' }
              : { access: ['customer'] },
        },
        async (req, reply) => {
          const p = kind === 'admin' ? principalOf(req, 'admin', 'service') : principalOf(req, 'customer');
          const answer = await offline.respond({
            actor: actorOf(p),
            ip: req.ip,
            ...(p.kind === 'customer' ? { customerId: p.customerId } : {}),
            ...req.body,
          });
          void reply.header('cache-control', 'no-store');
          return answer;
        },
      );
    }

    app.post(
      '/v1/admin/agents/:id/status-file',
      {
        schema: {
          tags: ['admin'],
          summary: `Issue a signed status file bound to this agent, valid for 1-${STATUS_FILE_MAX_DAYS} days (audited agent.status_file_issued)`,
          params: z.strictObject({ id: agentId }),
          body: statusFileBodySchema,
          response: { 200: statusFileSchema, ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'agents:write' },
      },
      async (req, reply) => {
        const p = principalOf(req, 'admin', 'service');
        const file = await deps.services.statusFiles.issue({
          actor: actorOf(p),
          agentId: req.params.id,
          validForDays: req.body.validForDays,
        });
        void reply.header('cache-control', 'no-store');
        return file;
      },
    );
  };
}
