import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent-activities';
import type { RetryPolicy } from '@temporalio/common';
import { AGENT_ACTIVITY_RETRY } from './agent-quarantine';

/**
 * agentOfflineSweep: run by a Temporal Schedule. Marks active agents whose last heartbeat is
 * older than `staleAfterS` (three heartbeat intervals) as offline; their next heartbeat brings
 * them back.
 */
export type AgentOfflineSweepInput = { staleAfterS: number };
export type AgentOfflineSweepResult = { marked: number };

export const AGENT_OFFLINE_SWEEP_ID = 'agent-offline-sweep';

export const SWEEP_START_TO_CLOSE = '2 minutes';
/** A sweep that keeps failing gives up: the schedule runs the next one anyway. */
export const SWEEP_ACTIVITY_RETRY: RetryPolicy = { ...AGENT_ACTIVITY_RETRY, maximumAttempts: 5 };

const { markStaleAgentsOffline } = proxyActivities<AgentActivities>({
  startToCloseTimeout: SWEEP_START_TO_CLOSE,
  retry: SWEEP_ACTIVITY_RETRY,
});

export async function agentOfflineSweep(input: AgentOfflineSweepInput): Promise<AgentOfflineSweepResult> {
  const { workflowId, runId } = workflowInfo();
  return markStaleAgentsOffline({ staleAfterS: input.staleAfterS, idempotencyPrefix: `${workflowId}/${runId}` });
}
