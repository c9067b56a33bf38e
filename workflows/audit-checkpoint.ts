import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { AuditActivities, AuditCheckpointResult } from '../activities/audit-activities';

/**
 * auditCheckpoint: run by the `agentina-audit-checkpoint` Schedule (AUDIT_CHECKPOINT_INTERVAL).
 * One activity signs the chain head and stores the checkpoint; the schedule's workflow id (unique
 * per run) is the idempotency key, so a retried activity stores one checkpoint.
 */
export const AUDIT_CHECKPOINT_SCHEDULE_ID = 'agentina-audit-checkpoint';
export const AUDIT_CHECKPOINT_TIMEOUT = '1 minute';
export const AUDIT_CHECKPOINT_RETRY = {
  initialInterval: '1 second',
  maximumInterval: '30 seconds',
  backoffCoefficient: 2,
  maximumAttempts: 10,
};

const { signAuditCheckpoint } = proxyActivities<AuditActivities>({
  startToCloseTimeout: AUDIT_CHECKPOINT_TIMEOUT,
  retry: AUDIT_CHECKPOINT_RETRY,
});

export async function auditCheckpoint(): Promise<AuditCheckpointResult> {
  return signAuditCheckpoint({ workflowId: workflowInfo().workflowId });
}
