import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { deregisterResponseSchema, heartbeatRequestSchema, heartbeatResponseSchema, type Signer } from '../../protocol';
import type { AppDeps } from '../app';
import { principalOf } from '../auth/access';
import { createLazyLicenseSigner } from '../../services/keys';
import { createStatusService } from '../../services/agent-status/status-service';
import { errorSchema } from '../schemas';
import { createHeartbeatService } from '../../services/agents/heartbeat-service';

const agentErrors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 429: errorSchema, 503: errorSchema };

/** POST /v1/agent/heartbeat and POST /v1/agent/deregister. */
export function agentHeartbeatRoutes(deps: AppDeps & { licenseSigner?: Signer }): FastifyPluginAsyncZod {
  return async (app) => {
    const signer = deps.licenseSigner ?? createLazyLicenseSigner(deps.config.keysDir);
    const status = createStatusService({ pool: deps.pool, signer, clock: deps.clock });
    const heartbeats = createHeartbeatService({
      pool: deps.pool,
      temporal: deps.temporal,
      clock: deps.clock,
      settings: deps.config.agents,
      currentStatus: (agentId) => status.currentStatus(agentId),
      onWarning: (message, err) => deps.logger.warn({ err }, message),
      onQuarantineStarted: (reason) =>
        deps.metrics.inc(
          'agentina_agent_quarantines_started_total',
          'agentQuarantine workflows started by heartbeats',
          { reason },
        ),
    });
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
        config: { access: ['agent'], rateLimit },
      },
      async (req, reply) => {
        const agent = principalOf(req, 'agent');
        if (req.body.terminalReason)
          req.log.info({ agentId: agent.id, terminalReason: req.body.terminalReason }, 'agent reports it is terminal');
        void reply.header('cache-control', 'no-store');
        const answer = await heartbeats.heartbeat(agent, req.body);
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
          response: { 200: deregisterResponseSchema, ...agentErrors },
        },
        config: { access: ['agent'], rateLimit },
      },
      async (req) => heartbeats.deregister(principalOf(req, 'agent')),
    );
  };
}
