import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent-activities';

/**
 * agentOfflineSweep: run by a Temporal Schedule. Marks active agents whose last heartbeat is
 * older than `staleAfterS` (three heartbeat intervals) as offline; their next heartbeat brings
 * them back.
 */
export type AgentOfflineSweepInput = { staleAfterS: number };
export type AgentOfflineSweepResult = { marked: number };

export const AGENT_OFFLINE_SWEEP_ID = 'agent-offline-sweep';

const { markStaleAgentsOffline } = proxyActivities<AgentActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', backoffCoefficient: 2, maximumAttempts: 5 },
});

export async function agentOfflineSweep(input: AgentOfflineSweepInput): Promise<AgentOfflineSweepResult> {
  const { workflowId, runId } = workflowInfo();
  return markStaleAgentsOffline({ staleAfterS: input.staleAfterS, idempotencyPrefix: `${workflowId}/${runId}` });
}
