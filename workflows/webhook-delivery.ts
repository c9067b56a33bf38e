/**
 * webhookDelivery — one workflow per delivery, id `webhook/<endpointId>/<eventId>`.
 *
 * One activity POSTs the signed event; Temporal retries it with exponential backoff for up to
 * WEBHOOK_GIVE_UP_AFTER (3 days). Each try logs itself (status, latency, response excerpt). When
 * the tries run out the delivery is marked failed and the endpoint disabled (with an audit row).
 * The input is two ids: the activity reads the event and the endpoint's secret from PostgreSQL
 * and signs there, so no history carries a secret or the payload.
 */
import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { WebhookActivities, WebhookDeliveryInput, WebhookDeliveryResult } from '../activities/webhook-activities';

export const WEBHOOK_WORKFLOW_TYPE = 'webhookDelivery';
export const webhookWorkflowId = (endpointId: string, eventId: string): string => `webhook/${endpointId}/${eventId}`;
/** The event id (and `webhook-id` header) of an audit row: stable across retries and redeliveries. */
export const webhookEventId = (seq: string | number): string => `msg_${seq}`;

/** Each try: connect, answer, read (the sender's own deadline is shorter). */
export const WEBHOOK_ATTEMPT_TIMEOUT = '30 seconds';
export const WEBHOOK_GIVE_UP_AFTER = '3 days';
export const WEBHOOK_RETRY = {
  initialInterval: '1 second' as const,
  backoffCoefficient: 2,
  maximumInterval: '1 hour' as const,
};
const NON_RETRYABLE = ['WEBHOOK_NOT_DELIVERABLE'];
export const WEBHOOK_BOOKKEEPING_RETRY = { initialInterval: '1 second', maximumInterval: '1 minute' } as const;

const { deliverWebhook } = proxyActivities<Pick<WebhookActivities, 'deliverWebhook'>>({
  startToCloseTimeout: WEBHOOK_ATTEMPT_TIMEOUT,
  scheduleToCloseTimeout: WEBHOOK_GIVE_UP_AFTER,
  retry: { ...WEBHOOK_RETRY, nonRetryableErrorTypes: NON_RETRYABLE },
});
const { failWebhookDelivery } = proxyActivities<Pick<WebhookActivities, 'failWebhookDelivery'>>({
  startToCloseTimeout: '30 seconds',
  retry: WEBHOOK_BOOKKEEPING_RETRY,
});

export async function webhookDelivery(input: WebhookDeliveryInput): Promise<WebhookDeliveryResult> {
  try {
    return await deliverWebhook(input);
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    const cause = err.cause;
    // Nothing to deliver (the endpoint was disabled meanwhile): recorded as failed, no auto-disable.
    const undeliverable = cause instanceof ApplicationFailure && cause.type === 'WEBHOOK_NOT_DELIVERABLE';
    return failWebhookDelivery({ ...input, disableEndpoint: !undeliverable });
  }
}
