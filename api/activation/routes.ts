import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  activateRequestSchema,
  activateResponseSchema,
  idSchema,
  isoTime,
  licenseId,
  customerId,
  agentId,
  safeString,
} from '../../protocol';
import type { AppDeps } from '../app';
import { actorOf, principalOf } from '../auth/access';
import { errorSchema } from '../schemas';
import { ACTIVATION_TOKEN_MAX_TTL_S, ACTIVATION_TOKEN_MIN_TTL_S } from '../../services/activation/activation-service';

/** Activation is anonymous: a per-IP limit keeps token guessing and audit flooding expensive. */
export const ACTIVATE_PER_IP_PER_MINUTE = 10;

const tokenId = idSchema('tok');
const actorSchema = z.strictObject({ kind: z.string().max(20), id: z.string().max(100) });

export const activationTokenViewSchema = z.strictObject({
  id: tokenId,
  licenseId,
  customerId,
  label: z.string().max(200).nullable(),
  state: z.enum(['pending', 'spent', 'expired', 'revoked']),
  createdAt: isoTime,
  expiresAt: isoTime,
  createdBy: actorSchema,
  spentAt: isoTime.nullable(),
  agentId: agentId.nullable(),
  revokedAt: isoTime.nullable(),
});

export const issueTokenBodySchema = z.strictObject({
  licenseId,
  /** Time to live in seconds (default 24 h). */
  ttlSeconds: z.number().int().min(ACTIVATION_TOKEN_MIN_TTL_S).max(ACTIVATION_TOKEN_MAX_TTL_S).optional(),
  label: safeString(200).min(1).optional(),
});
export const issuedTokenSchema = z.strictObject({
  /** Shown once: only its sha256 is stored. */
  token: z.string().regex(/^act_[A-Za-z0-9_-]{22,64}$/),
  activationToken: activationTokenViewSchema,
});
const listQueryBase = {
  licenseId: licenseId.optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
  /** Keyset cursor: the createdAt of the last item of the previous page. */
  before: isoTime.optional(),
};
export const adminListQuerySchema = z.strictObject({ ...listQueryBase, customerId: customerId.optional() });
export const portalListQuerySchema = z.strictObject(listQueryBase);
const listResponseSchema = z.strictObject({ items: z.array(activationTokenViewSchema) });
const idParams = z.strictObject({ id: tokenId });
const revokeBodySchema = z.strictObject({}).optional();

export const activationErrors = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  409: errorSchema,
  429: errorSchema,
  503: errorSchema,
};

/**
 * Activation tokens for admins and service accounts (/v1/admin/activation-tokens), for a
 * license's own customer (/v1/portal/activation-tokens), and their redemption by an agent
 * (POST /v1/agent/activate).
 */
export function activationRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const service = deps.services.activation;

    // ---- admin and service accounts: any license
    app.post(
      '/v1/admin/activation-tokens',
      {
        schema: {
          tags: ['activation'],
          summary: 'Issue a single-use activation token for a license (shown once)',
          body: issueTokenBodySchema,
          response: { 201: issuedTokenSchema, ...activationErrors },
        },
        config: { access: ['admin', 'service'], permission: 'licenses:write' },
      },
      async (req, reply) => {
        const p = principalOf(req, 'admin', 'service');
        const issued = await service.issueToken({ actor: actorOf(p), ...req.body });
        void reply.header('cache-control', 'no-store');
        return reply.status(201).send(issued);
      },
    );

    app.get(
      '/v1/admin/activation-tokens',
      {
        schema: {
          tags: ['activation'],
          summary: 'List activation tokens, newest first',
          querystring: adminListQuerySchema,
          response: { 200: listResponseSchema, ...activationErrors },
        },
        config: { access: ['admin', 'service'], permission: 'licenses:read' },
      },
      async (req) => {
        const q = req.query;
        return {
          items: await service.listTokens({
            limit: q.limit ?? 50,
            ...(q.licenseId ? { licenseId: q.licenseId } : {}),
            ...(q.customerId ? { customerId: q.customerId } : {}),
            ...(q.before ? { before: new Date(q.before) } : {}),
          }),
        };
      },
    );

    app.get(
      '/v1/admin/activation-tokens/:id',
      {
        schema: {
          tags: ['activation'],
          summary: 'One activation token',
          params: idParams,
          response: { 200: activationTokenViewSchema, ...activationErrors },
        },
        config: { access: ['admin', 'service'], permission: 'licenses:read' },
      },
      async (req) => service.getToken(req.params.id),
    );

    app.post(
      '/v1/admin/activation-tokens/:id/revoke',
      {
        schema: {
          tags: ['activation'],
          summary: 'Revoke an unused activation token',
          params: idParams,
          body: revokeBodySchema,
          response: { 200: activationTokenViewSchema, ...activationErrors },
        },
        config: { access: ['admin', 'service'], permission: 'licenses:write' },
      },
      async (req) => service.revokeToken({ actor: actorOf(principalOf(req, 'admin', 'service')), id: req.params.id }),
    );

    // ---- customer portal: only the caller's own licenses; anything else is a 404
    app.post(
      '/v1/portal/activation-tokens',
      {
        schema: {
          tags: ['activation'],
          summary: 'Issue an activation token for one of your licenses (shown once)',
          body: issueTokenBodySchema,
          response: { 201: issuedTokenSchema, ...activationErrors },
        },
        config: { access: ['customer'] },
      },
      async (req, reply) => {
        const p = principalOf(req, 'customer');
        const issued = await service.issueToken({ actor: actorOf(p), customerId: p.customerId, ...req.body });
        void reply.header('cache-control', 'no-store');
        return reply.status(201).send(issued);
      },
    );

    app.get(
      '/v1/portal/activation-tokens',
      {
        schema: {
          tags: ['activation'],
          summary: 'Your activation tokens, newest first',
          querystring: portalListQuerySchema,
          response: { 200: listResponseSchema, ...activationErrors },
        },
        config: { access: ['customer'] },
      },
      async (req) => {
        const p = principalOf(req, 'customer');
        const q = req.query;
        return {
          items: await service.listTokens({
            customerId: p.customerId,
            limit: q.limit ?? 50,
            ...(q.licenseId ? { licenseId: q.licenseId } : {}),
            ...(q.before ? { before: new Date(q.before) } : {}),
          }),
        };
      },
    );

    app.get(
      '/v1/portal/activation-tokens/:id',
      {
        schema: {
          tags: ['activation'],
          summary: 'One of your activation tokens',
          params: idParams,
          response: { 200: activationTokenViewSchema, ...activationErrors },
        },
        config: { access: ['customer'] },
      },
      async (req) => service.getToken(req.params.id, principalOf(req, 'customer').customerId),
    );

    app.post(
      '/v1/portal/activation-tokens/:id/revoke',
      {
        schema: {
          tags: ['activation'],
          summary: 'Revoke one of your unused activation tokens',
          params: idParams,
          body: revokeBodySchema,
          response: { 200: activationTokenViewSchema, ...activationErrors },
        },
        config: { access: ['customer'] },
      },
      async (req) => {
        const p = principalOf(req, 'customer');
        return service.revokeToken({ actor: actorOf(p), id: req.params.id, customerId: p.customerId });
      },
    );

    // ---- the agent
    app.post(
      '/v1/agent/activate',
      {
        schema: {
          tags: ['agent'],
          summary: 'Redeem an activation token: the agent credential (shown once), its signed license and status',
          body: activateRequestSchema,
          response: { 200: activateResponseSchema, 410: errorSchema, ...activationErrors },
        },
        config: { access: ['anonymous'], rateLimit: { max: ACTIVATE_PER_IP_PER_MINUTE, timeWindow: '1 minute' } },
      },
      async (req, reply) => {
        const answer = await service.activate(req.body, req.ip);
        void reply.header('cache-control', 'no-store');
        return answer;
      },
    );
  };
}
