import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { idSchema, safeString, WEBHOOK_DELIVERY_STATES, WEBHOOK_EVENTS } from '../../protocol';
import type { AppDeps } from '../app';
import { actorOf, principalOf } from '../auth/access';
import { emptyBody, errorSchema } from '../schemas';
import { DELIVERY_PAGE_MAX, MAX_ROTATION_OVERLAP_S } from '../../services/webhooks/webhooks-service';

const endpointId = idSchema('whk');
const eventId = safeString(40).regex(/^msg_[1-9]\d{0,17}$/, 'must be a msg_ event id');
const seqCursor = safeString(19).regex(/^[1-9]\d{0,17}$/, 'must be a sequence number');
const url = safeString(2000).min(1);
const events = z.array(z.enum(WEBHOOK_EVENTS)).min(1).max(WEBHOOK_EVENTS.length);

const endpointSchema = z.strictObject({
  id: z.string().max(72),
  url: z.string().max(2000),
  description: z.string().max(500),
  events: z.array(z.enum(WEBHOOK_EVENTS)),
  enabled: z.boolean(),
  disabledReason: z.string().max(500).nullable(),
  previousSecretExpiresAt: z.string().max(40).nullable(),
  consecutiveFailures: z.number().int(),
  createdAt: z.string().max(40),
  updatedAt: z.string().max(40),
});
const withSecret = z.strictObject({
  endpoint: endpointSchema,
  secret: z.string().max(200).describe('whsec_ + base64: shown once, store it now'),
});
const attemptSchema = z.strictObject({
  attempt: z.number().int(),
  startedAt: z.string().max(40),
  statusCode: z.number().int().nullable(),
  latencyMs: z.number().int(),
  ok: z.boolean(),
  error: z.string().max(500).nullable(),
  responseExcerpt: z.string().max(1024).nullable(),
});
const deliverySchema = z.strictObject({
  endpointId: z.string().max(72),
  eventId: z.string().max(40),
  sequence: z.number().int(),
  type: z.enum(WEBHOOK_EVENTS),
  state: z.enum(WEBHOOK_DELIVERY_STATES),
  attempts: z.array(attemptSchema),
  createdAt: z.string().max(40),
  completedAt: z.string().max(40).nullable(),
});
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema };
const params = z.strictObject({ id: endpointId });

/** Webhook endpoints: admins only (a customer or a service token is refused). */
export function webhooksRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const webhooks = deps.services.webhooks;
    const read = { access: ['admin'] as const, permission: 'webhooks:read' as const };
    const write = { access: ['admin'] as const, permission: 'webhooks:write' as const };
    const actor = (req: Parameters<typeof principalOf>[0]) => actorOf(principalOf(req, 'admin'));

    app.post(
      '/v1/admin/webhooks',
      {
        schema: {
          tags: ['admin', 'webhooks'],
          summary: 'Add a webhook endpoint; the answer carries its signing secret, shown once',
          body: z.strictObject({
            url,
            description: safeString(500).optional(),
            events,
            enabled: z.boolean().optional(),
          }),
          response: { 201: withSecret, ...errors, 503: errorSchema },
        },
        config: write,
      },
      async (req, reply) => reply.status(201).send(await webhooks.createEndpoint(actor(req), req.body)),
    );

    app.get(
      '/v1/admin/webhooks',
      {
        schema: {
          tags: ['admin', 'webhooks'],
          summary: 'Webhook endpoints, newest first',
          response: { 200: z.strictObject({ items: z.array(endpointSchema) }), ...errors },
        },
        config: read,
      },
      async () => webhooks.listEndpoints(),
    );

    app.get(
      '/v1/admin/webhooks/:id',
      {
        schema: {
          tags: ['admin', 'webhooks'],
          summary: 'One webhook endpoint',
          params,
          response: { 200: endpointSchema, ...errors, 404: errorSchema },
        },
        config: read,
      },
      async (req) => webhooks.getEndpoint(req.params.id),
    );

    app.patch(
      '/v1/admin/webhooks/:id',
      {
        schema: {
          tags: ['admin', 'webhooks'],
          summary: 'Change an endpoint: URL, description, events, enabled (re-enabling resets its failures)',
          params,
          body: z.strictObject({
            url: url.optional(),
            description: safeString(500).optional(),
            events: events.optional(),
            enabled: z.boolean().optional(),
          }),
          response: { 200: endpointSchema, ...errors, 404: errorSchema },
        },
        config: write,
      },
      async (req) => webhooks.updateEndpoint(actor(req), req.params.id, req.body),
    );

    app.post(
      '/v1/admin/webhooks/:id/rotate-secret',
      {
        schema: {
          tags: ['admin', 'webhooks'],
          summary: 'A new signing secret (shown once); the old one also signs for overlapSeconds (default 1 day)',
          params,
          body: z
            .strictObject({ overlapSeconds: z.number().int().min(0).max(MAX_ROTATION_OVERLAP_S).optional() })
            .nullish(),
          response: { 200: withSecret, ...errors, 404: errorSchema, 503: errorSchema },
        },
        config: write,
      },
      async (req) => webhooks.rotateSecret(actor(req), req.params.id, req.body?.overlapSeconds),
    );

    app.get(
      '/v1/admin/webhooks/:id/deliveries',
      {
        schema: {
          tags: ['admin', 'webhooks'],
          summary: 'Deliveries to an endpoint, newest event first, each with its attempt log',
          params,
          querystring: z.strictObject({
            cursor: seqCursor.optional(),
            limit: z.coerce.number().int().min(1).max(DELIVERY_PAGE_MAX).optional(),
          }),
          response: {
            200: z.strictObject({ items: z.array(deliverySchema), nextCursor: seqCursor.nullable() }),
            ...errors,
            404: errorSchema,
          },
        },
        config: read,
      },
      async (req) => webhooks.listDeliveries(req.params.id, req.query),
    );

    app.post(
      '/v1/admin/webhooks/:id/deliveries/:eventId/redeliver',
      {
        schema: {
          tags: ['admin', 'webhooks'],
          summary: 'Deliver an event again (same webhook-id, so receivers can de-duplicate)',
          params: z.strictObject({ id: endpointId, eventId }),
          body: emptyBody,
          response: {
            202: z.strictObject({ state: z.literal('pending') }),
            ...errors,
            404: errorSchema,
            409: errorSchema,
          },
        },
        config: write,
      },
      async (req, reply) =>
        reply.status(202).send(await webhooks.redeliver(actor(req), req.params.id, req.params.eventId)),
    );
  };
}
