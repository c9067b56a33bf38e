import { ApplicationFailure } from '@temporalio/activity';
import type { ActivityServices } from './create-activities';

import type { WebhookDeliveryInput, WebhookDeliveryResult } from '../services/webhooks/webhooks-service';

export type { WebhookDeliveryInput, WebhookDeliveryResult };

export function createWebhookActivities(services: Pick<ActivityServices, 'webhooks'>) {
  return {
    /**
     * One try (services/webhooks/webhook-deliveries.ts): signs with the secret read from the
     * database here, sends, logs the attempt. A failed try throws, for the retry policy.
     */
    async deliverWebhook(input: WebhookDeliveryInput): Promise<WebhookDeliveryResult> {
      const r = await services.webhooks.attemptDelivery(input);
      if (r.ok) return { outcome: 'succeeded', attempts: r.attempts };
      if (!r.retryable) throw ApplicationFailure.nonRetryable(r.error, 'WEBHOOK_NOT_DELIVERABLE');
      throw ApplicationFailure.retryable(r.error, 'WEBHOOK_ATTEMPT_FAILED');
    },
    /** The tries ran out: the delivery is failed, and the endpoint disabled (audited) when asked. */
    failWebhookDelivery: (input: WebhookDeliveryInput & { disableEndpoint: boolean }): Promise<WebhookDeliveryResult> =>
      services.webhooks.failDelivery(input),
  };
}

export type WebhookActivities = ReturnType<typeof createWebhookActivities>;
