import type { Services } from '../services';
import { createAgentActivities } from './agent-activities';
import { createAuditActivities } from './audit-activities';
import { createIdentityActivities } from './identity-activities';
import { createLicenseActivities } from './license-activities';
import { createReconcileActivities } from './reconcile-activities';
import { createReleaseActivities } from './release-activities';
import { createWebhookActivities } from './webhook-activities';

/** What the activities call: the worker process's services (createServices, once). */
export type ActivityServices = Pick<
  Services,
  'transitions' | 'checkpoints' | 'quarantine' | 'seats' | 'identity' | 'reconcile' | 'releases' | 'webhooks'
>;

/**
 * Builds the activity implementations registered on the worker. Activities are thin: each calls
 * one service and turns a refusal no retry can fix into a non-retryable failure.
 */
export function createActivities(services: ActivityServices) {
  return {
    ...createAgentActivities(services),
    ...createAuditActivities(services),
    ...createLicenseActivities(services),
    ...createIdentityActivities(services),
    ...createReconcileActivities(services),
    ...createReleaseActivities(services),
    ...createWebhookActivities(services),
  };
}

export type Activities = ReturnType<typeof createActivities>;
