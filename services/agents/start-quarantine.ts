import { TypedSearchAttributes } from '@temporalio/common';
import { agentWorkflowId, type AgentQuarantineInput, type QuarantineReason } from '../../workflows/agent-quarantine';
import { CustomerIdAttribute, LicenseIdAttribute } from '../../workflows/license-contract';
import type { TemporalDeps } from '../temporal';

/**
 * Starts the agentQuarantine workflow for a detection already audited (or joins the one running):
 * what heartbeats (tampered runtime, moved machine) and clone detection share.
 */
export async function startAgentQuarantine(
  temporal: TemporalDeps,
  agent: { id: string; licenseId: string; customerId: string },
  reason: QuarantineReason,
  detectedAt: Date,
): Promise<void> {
  const input: AgentQuarantineInput = { agentId: agent.id, reason, detectedAt: detectedAt.toISOString() };
  await temporal.client.workflow.start('agentQuarantine', {
    workflowId: agentWorkflowId(agent.id),
    taskQueue: temporal.taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    // Operators find an agent's quarantines next to its license's lifecycle in Temporal Web.
    typedSearchAttributes: new TypedSearchAttributes([
      { key: LicenseIdAttribute, value: agent.licenseId },
      { key: CustomerIdAttribute, value: agent.customerId },
    ]),
  });
}
