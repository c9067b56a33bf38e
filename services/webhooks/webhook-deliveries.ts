import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import * as repo from '../../db/webhooks-repo';
import { scrubFreeText, type Actor, type Clock, type WebhookDeliveryView, type WebhookEvent } from '../../protocol';
import { webhookEventId, webhookWorkflowId } from '../../workflows/webhook-delivery';
import { AppError } from '../errors';
import type { TemporalDeps } from '../temporal';
import type { AllowList } from './outbound-address';
import { startDelivery, type WebhookDeliveryInput, type WebhookDeliveryResult } from './webhook-dispatcher';
import { auditEndpoint, requireEndpoint } from './webhook-endpoints';
import { webhookPayload } from './webhook-payload';
import { sendWebhook, signWebhook, type SendLimits } from './webhook-sender';

export const DELIVERY_PAGE_DEFAULT = 50;
export const DELIVERY_PAGE_MAX = 200;
export const AUTO_DISABLED_REASON = 'persistent delivery failure';

/**
 * Deliveries and their attempts: listed and redelivered by admins, tried and failed by the
 * delivery workflow's activities.
 */
export function createWebhookDeliveries(
  deps: { pool: Pool; clock: Clock; temporal: TemporalDeps },
  send: {
    allow: AllowList;
    limits: SendLimits;
    signingSecrets: (endpoint: repo.WebhookEndpointRow, now: Date) => string[];
  },
) {
  const { pool, clock } = deps;
  const { allow, limits, signingSecrets } = send;

  async function countAttempts(input: WebhookDeliveryInput): Promise<number> {
    return (await repo.listAttempts(pool, input.endpointId, [input.eventSeq])).length;
  }

  return {
    async listDeliveries(
      id: string,
      q: { limit?: number; cursor?: string },
    ): Promise<{ items: WebhookDeliveryView[]; nextCursor: string | null }> {
      await requireEndpoint(pool, id);
      const limit = q.limit ?? DELIVERY_PAGE_DEFAULT;
      const rows = await repo.listDeliveries(pool, id, {
        limit: limit + 1,
        ...(q.cursor !== undefined ? { beforeSeq: q.cursor } : {}),
      });
      const page = rows.slice(0, limit);
      const attempts = await repo.listAttempts(
        pool,
        id,
        page.map((r) => r.event_seq),
      );
      return {
        items: page.map((r) => ({
          endpointId: r.endpoint_id,
          eventId: webhookEventId(r.event_seq),
          sequence: Number(r.event_seq),
          type: r.event_type as WebhookEvent,
          state: r.state,
          createdAt: r.created_at.toISOString(),
          completedAt: r.completed_at?.toISOString() ?? null,
          attempts: attempts
            .filter((a) => a.event_seq === r.event_seq)
            .map((a, i) => ({
              attempt: i + 1,
              startedAt: a.started_at.toISOString(),
              statusCode: a.status_code,
              latencyMs: a.latency_ms,
              ok: a.ok,
              error: a.error,
              responseExcerpt: a.response_excerpt,
            })),
        })),
        nextCursor: rows.length > limit ? page[page.length - 1]!.event_seq : null,
      };
    },

    /** Sends a delivery again by hand (same event id, so receivers can de-duplicate). */
    async redeliver(actor: Actor, id: string, eventId: string): Promise<{ state: 'pending' }> {
      const seq = /^msg_(\d{1,18})$/.exec(eventId)?.[1];
      const endpoint = await requireEndpoint(pool, id);
      const delivery = seq === undefined ? undefined : await repo.getDelivery(pool, id, seq);
      if (!delivery || seq === undefined) throw new AppError('NOT_FOUND', `No delivery ${eventId} for ${id}.`);
      if (!endpoint.enabled) throw new AppError('CONFLICT', 'The endpoint is disabled; enable it first.');
      if (delivery.state === 'pending' || delivery.state === 'delivering')
        throw new AppError('CONFLICT', 'This delivery is still being tried.');
      await withTransaction(pool, async (tx) => {
        await repo.setDeliveryState(tx, id, seq, 'pending', null);
        await auditEndpoint(tx, clock, actor, 'webhook.redelivery_requested', id, { eventId });
      });
      if (!(await startDelivery(deps.temporal, id, seq, true)))
        throw new AppError('CONFLICT', 'This delivery is still being tried.');
      await repo.markDispatched(pool, id, seq, clock.now());
      return { state: 'pending' };
    },

    /** One try of a delivery (the activity): sign with the secrets read here, send, log. */
    async attemptDelivery(
      input: WebhookDeliveryInput,
    ): Promise<{ ok: true; attempts: number } | { ok: false; retryable: boolean; error: string }> {
      const endpoint = await repo.getEndpoint(pool, input.endpointId);
      const event = await repo.readEvent(pool, input.eventSeq);
      const delivery = await repo.getDelivery(pool, input.endpointId, input.eventSeq);
      if (!endpoint || !event || !delivery) return { ok: false, retryable: false, error: 'no such delivery' };
      if (!endpoint.enabled) return { ok: false, retryable: false, error: 'the endpoint is disabled' };
      if (delivery.state === 'succeeded') return { ok: true, attempts: 0 };
      const now = clock.now();
      const secrets = signingSecrets(endpoint, now);
      const id = webhookEventId(event.seq);
      const timestamp = Math.floor(now.getTime() / 1000);
      const body = JSON.stringify(webhookPayload(event));
      await repo.setDeliveryState(pool, endpoint.id, input.eventSeq, 'delivering', null);
      const attemptId = await repo.startAttempt(pool, endpoint.id, input.eventSeq, now);
      const r = await sendWebhook({
        url: endpoint.url,
        body,
        allow,
        limits,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Agentina-Webhooks/1',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWebhook(secrets, id, timestamp, body),
        },
      });
      const error = r.error === null ? null : scrubFreeText(r.error, 500);
      await withTransaction(pool, async (tx) => {
        await repo.finishAttempt(tx, attemptId, {
          status_code: r.statusCode,
          latency_ms: r.latencyMs,
          ok: r.ok,
          error,
          response_excerpt: r.responseExcerpt === null ? null : scrubFreeText(r.responseExcerpt, 1024),
        });
        if (r.ok) await repo.setDeliveryState(tx, endpoint.id, input.eventSeq, 'succeeded', clock.now());
        await tx.query(
          r.ok
            ? 'UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = $1 AND consecutive_failures > 0'
            : 'UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1 WHERE id = $1',
          [endpoint.id],
        );
      });
      if (r.ok) return { ok: true, attempts: await countAttempts(input) };
      return { ok: false, retryable: true, error: error ?? 'failed' };
    },

    /** The tries ran out: the delivery is failed; the endpoint disabled and audited when asked. */
    async failDelivery(input: WebhookDeliveryInput & { disableEndpoint: boolean }): Promise<WebhookDeliveryResult> {
      await withTransaction(pool, async (tx) => {
        const delivery = await repo.getDelivery(tx, input.endpointId, input.eventSeq);
        if (delivery) await repo.setDeliveryState(tx, input.endpointId, input.eventSeq, 'failed', clock.now());
        const endpoint = await repo.getEndpoint(tx, input.endpointId, true);
        if (!input.disableEndpoint || !endpoint?.enabled) return;
        await repo.updateEndpoint(tx, endpoint.id, {
          enabled: false,
          disabled_reason: AUTO_DISABLED_REASON,
          updated_at: clock.now(),
        });
        await appendAudit(
          tx,
          {
            actor: { kind: 'workflow', id: webhookWorkflowId(input.endpointId, webhookEventId(input.eventSeq)) },
            action: 'webhook_endpoint.auto_disabled',
            subject: { kind: 'webhook_endpoint', id: endpoint.id },
            data: { eventId: webhookEventId(input.eventSeq), consecutiveFailures: endpoint.consecutive_failures },
          },
          clock,
        );
      });
      return { outcome: 'failed', attempts: await countAttempts(input) };
    },
  };
}
