import type { AuditCheckpointInput, AuditCheckpointResult } from '../services/audit/checkpoint-service';
import type { ActivityServices } from './create-activities';

export type { AuditCheckpointInput, AuditCheckpointResult };
export { checkpointKey, HELD_CHECKPOINTS_FILE } from '../services/audit/checkpoint-service';

export function createAuditActivities(services: Pick<ActivityServices, 'checkpoints'>) {
  return {
    /** Signs the chain head once per run (services/audit/checkpoint-service.ts). */
    signAuditCheckpoint: (input: AuditCheckpointInput): Promise<AuditCheckpointResult> =>
      services.checkpoints.signCheckpoint(input),
    /** The run gave up: `audit.checkpoint_failed` (a webhook event), once per run. */
    recordCheckpointFailure: (input: { workflowId: string; cause: string }): Promise<void> =>
      services.checkpoints.recordFailure(input),
  };
}

export type AuditActivities = ReturnType<typeof createAuditActivities>;
