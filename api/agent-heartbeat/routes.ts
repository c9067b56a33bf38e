import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { deregisterResponseSchema, heartbeatRequestSchema, heartbeatResponseSchema } from '../../protocol';
import type { AppDeps } from '../app';
import { principalOf } from '../auth/access';
import { presentedAgentCredential } from '../auth/agent-proof';
import { emptyBody, errorSchema } from '../schemas';

const agentErrors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 429: errorSchema, 503: errorSchema };

/** POST /v1/agent/heartbeat and POST /v1/agent/deregister. */
export function agentHeartbeatRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const heartbeats = deps.services.heartbeats;
    // A heartbeat a minute per agent; the limit only stops a runaway loop.
    const rateLimit = {
      max: 120,
      timeWindow: '1 minute',
      keyGenerator: (req: { principal: { id: string } | null; ip: string }) => req.principal?.id ?? req.ip,
    };

    app.post(
      '/v1/agent/heartbeat',
      {
        schema: {
          tags: ['agent'],
          summary: 'Report version, runtime hash, fingerprint and in-flight tasks; answered with the signed status',
          body: heartbeatRequestSchema,
          response: { 200: heartbeatResponseSchema, ...agentErrors },
        },
        config: { access: ['agent'], rateLimit, rotatesCredential: true },
      },
      async (req, reply) => {
        const agent = principalOf(req, 'agent');
        const presented = presentedAgentCredential(req);
        if (req.body.terminalReason)
          req.log.info({ agentId: agent.id, terminalReason: req.body.terminalReason }, 'agent reports it is terminal');
        void reply.header('cache-control', 'no-store');
        const answer = await heartbeats.heartbeat(agent, req.body, presented);
        deps.metrics.inc('agentina_agent_heartbeats_total', 'Agent heartbeats accepted');
        return answer;
      },
    );

    app.post(
      '/v1/agent/deregister',
      {
        schema: {
          tags: ['agent'],
          summary: 'Deregister this agent: frees its license seat; its credential stops working',
          body: emptyBody,
          response: { 200: deregisterResponseSchema, ...agentErrors },
        },
        config: { access: ['agent'], rateLimit },
      },
      async (req) => heartbeats.deregister(principalOf(req, 'agent')),
    );
  };
}
