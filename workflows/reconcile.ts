import { proxyActivities } from '@temporalio/workflow';
import type { ReconcileActivities, ReconcileSummary } from '../activities/reconcile-activities';

/**
 * reconcileLifecycles: run by the `agentina-reconcile` Schedule. One activity compares every
 * license and agent row with its workflow and repairs from the rows
 * (services/operations/reconcile-service.ts); it is safe to run twice, since a second run finds
 * nothing left to repair.
 */
export const RECONCILE_SCHEDULE_ID = 'agentina-reconcile';
export const RECONCILE_TIMEOUT = '30 minutes';
export const RECONCILE_RETRY = { initialInterval: '10 seconds', maximumInterval: '5 minutes', maximumAttempts: 3 };

const { reconcileLifecycles: run } = proxyActivities<ReconcileActivities>({
  startToCloseTimeout: RECONCILE_TIMEOUT,
  retry: RECONCILE_RETRY,
});

export async function reconcileLifecycles(): Promise<ReconcileSummary> {
  return run();
}
