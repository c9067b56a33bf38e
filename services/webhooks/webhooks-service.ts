import type { Pool } from 'pg';
import type { Clock, SecretKey } from '../../protocol';
import type { TemporalDeps } from '../temporal';
import { createAllowList } from './outbound-address';
import { createWebhookDeliveries } from './webhook-deliveries';
import { createWebhookDispatcher } from './webhook-dispatcher';
import { createWebhookEndpoints } from './webhook-endpoints';
import { createWebhookSecrets } from './webhook-secrets';
import { DEFAULT_SEND_LIMITS, type SendLimits } from './webhook-sender';

export { AUTO_DISABLED_REASON, DELIVERY_PAGE_DEFAULT, DELIVERY_PAGE_MAX } from './webhook-deliveries';
export { DISPATCH_POLL_MS, type WebhookDeliveryInput, type WebhookDeliveryResult } from './webhook-dispatcher';
export {
  DEFAULT_ROTATION_OVERLAP_S,
  MAX_ROTATION_OVERLAP_S,
  type EndpointInput,
  type EndpointPatch,
} from './webhook-endpoints';

export type WebhooksServiceDeps = {
  pool: Pool;
  temporal: TemporalDeps;
  clock: Clock;
  secrets: () => SecretKey[];
  allowHosts: readonly string[];
  sendLimits?: SendLimits;
  onWarning: (message: string, err: unknown) => void;
};

/** Webhook endpoints (admin API), deliveries (the worker's dispatcher and activities). */
export function createWebhooksService(deps: WebhooksServiceDeps) {
  const allow = createAllowList(deps.allowHosts);
  const limits = deps.sendLimits ?? DEFAULT_SEND_LIMITS;
  const { sealSecret, signingSecrets } = createWebhookSecrets(deps.secrets);
  return {
    ...createWebhookEndpoints(deps, allow, sealSecret),
    ...createWebhookDeliveries(deps, { allow, limits, signingSecrets }),
    ...createWebhookDispatcher(deps),
  };
}

export type WebhooksService = ReturnType<typeof createWebhooksService>;
