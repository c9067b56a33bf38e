import { ActivityFailure, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
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
const { recordCheckpointFailure } = proxyActivities<AuditActivities>({
  startToCloseTimeout: AUDIT_CHECKPOINT_TIMEOUT,
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** Runs that record this patch audit a checkpoint that failed for good (`audit.checkpoint_failed`). */
export const CHECKPOINT_FAILURE_PATCH = 'checkpoint-failure-audited';

export async function auditCheckpoint(): Promise<AuditCheckpointResult> {
  const { workflowId } = workflowInfo();
  try {
    return await signAuditCheckpoint({ workflowId });
  } catch (err) {
    if (err instanceof ActivityFailure && patched(CHECKPOINT_FAILURE_PATCH)) {
      // The cause's type only (e.g. UNAVAILABLE: no key): never a message that could carry a path or a value.
      const cause = err.cause as { type?: string | null; name?: string } | undefined;
      await recordCheckpointFailure({ workflowId, cause: String(cause?.type ?? cause?.name ?? 'error').slice(0, 100) });
    }
    throw err;
  }
}
