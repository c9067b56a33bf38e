import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  revocationsQuerySchema,
  signedRevocationsSchema,
  statusQuerySchema,
  statusResponseSchema,
  type StatusResponse,
} from '../../protocol';
import type { AppDeps } from '../app';
import { principalOf } from '../auth/access';
import { AppError } from '../errors';
import { errorSchema } from '../schemas';
import { createAgentRateLimit } from './agent-rate-limit';

/** A long-polling agent holds one request at a time; this only stops a runaway loop. */
const PER_AGENT_PER_MINUTE = 1200;

const agentErrors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 429: errorSchema, 503: errorSchema };

/**
 * GET /v1/agent/status (long-poll) and GET /v1/agent/revocations (the signed bad-news feed an
 * agent reads when it is back in contact, for its journal). Owns this process's one
 * LISTEN connection; it is opened when the app is ready and closed with the app.
 */
export function agentStatusRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const { status, revocations, statusListener: listener } = deps.services;

    deps.metrics.gauge('agentina_status_parked', 'Status long-polls parked in this process', () => listener.waiting);
    deps.metrics.gauge(
      'agentina_status_notices_received',
      'Status notices received on the LISTEN connection since start',
      () => listener.notices,
    );
    deps.metrics.gauge('agentina_status_listener_up', '1 while the LISTEN connection for status notices is up', () =>
      listener.connected ? 1 : 0,
    );

    deps.metrics.gauge(
      'agentina_status_batch_signatures',
      'Batch signatures made for status answers since start (one covers every answer of a turn)',
      () => status.batchStats().batches,
    );
    deps.metrics.gauge(
      'agentina_status_batch_signed_answers',
      'Status answers covered by batch signatures since start',
      () => status.batchStats().signed,
    );

    // Per agent, not per IP: a site's agents share one address. The plugin limiter is off for these routes.
    const limiter = createAgentRateLimit(PER_AGENT_PER_MINUTE);

    app.get(
      '/v1/agent/status',
      {
        schema: {
          tags: ['agent'],
          summary: "The agent's signed status; parks up to `wait` seconds while its version equals `since`",
          querystring: statusQuerySchema,
          response: { 200: statusResponseSchema, ...agentErrors },
        },
        config: { access: ['agent'], rateLimit: false },
      },
      async (req, reply) => {
        const agent = principalOf(req, 'agent');
        limiter.take(agent.id);
        const { since, wait, license, signatures } = req.query;
        // Only a request that may park needs to hear about its client going away.
        let signal: AbortSignal | undefined;
        if (since !== undefined && wait) {
          const abort = new AbortController();
          reply.raw.once('close', () => {
            if (!reply.raw.writableEnded) abort.abort();
          });
          signal = abort.signal;
        }
        const answer = await status.awaitStatus({
          agentId: agent.id,
          licenseId: agent.licenseId,
          since,
          waitS: wait,
          heldLicense: license,
          batch: signatures === 'batch',
          ...(signal ? { signal } : {}),
        });
        if (!answer) throw new AppError('UNAUTHENTICATED', 'This agent credential is no longer valid.');
        // The answer was checked against statusResponseSchema's parts when it was signed; its JSON is
        // reused as long as the signature is (same agent, same version, under a second old).
        return reply
          .header('cache-control', 'no-store')
          .type('application/json; charset=utf-8')
          .send(answer.json as unknown as StatusResponse);
      },
    );

    app.get(
      '/v1/agent/revocations',
      {
        schema: {
          tags: ['agent'],
          summary:
            "Signed list of bad news for the agent's license since a cursor: revoked, suspended, expired, quarantined",
          querystring: revocationsQuerySchema,
          response: { 200: signedRevocationsSchema, ...agentErrors },
        },
        config: { access: ['agent'], rateLimit: false },
      },
      async (req, reply) => {
        const agent = principalOf(req, 'agent');
        limiter.take(agent.id);
        void reply.header('cache-control', 'no-store');
        return revocations.listSince(agent.licenseId, req.query.since ?? 0, req.query.limit ?? 100);
      },
    );
  };
}
