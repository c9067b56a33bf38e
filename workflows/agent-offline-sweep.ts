import { ParentClosePolicy, patched, proxyActivities, startChild, workflowInfo } from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent-activities';
import { TypedSearchAttributes, WorkflowExecutionAlreadyStartedError, type RetryPolicy } from '@temporalio/common';
import { AGENT_ACTIVITY_RETRY } from './agent-quarantine';
import { agentSeatReclaim, seatReclaimWorkflowId } from './agent-seat-reclaim';
import { CustomerIdAttribute, LicenseIdAttribute } from './license-contract';

/**
 * agentOfflineSweep: run by a Temporal Schedule. Marks active agents whose last heartbeat is
 * older than `staleAfterS` (three heartbeat intervals) as offline; their next heartbeat brings
 * them back. Each agent it marks gets its seat-reclaim timer (agentSeatReclaim), which outlives
 * the sweep; an agent whose timer already runs keeps that one.
 */
export type AgentOfflineSweepInput = { staleAfterS: number };
export type AgentOfflineSweepResult = { marked: number; reclaimTimersStarted?: number };

export const AGENT_OFFLINE_SWEEP_ID = 'agent-offline-sweep';
/** Sweeps that record this patch start seat-reclaim timers; one running across the upgrade replays without. */
export const SEAT_RECLAIM_PATCH = 'seat-reclaim-timers';

export const SWEEP_START_TO_CLOSE = '2 minutes';
/** A sweep that keeps failing gives up: the schedule runs the next one anyway. */
export const SWEEP_ACTIVITY_RETRY: RetryPolicy = { ...AGENT_ACTIVITY_RETRY, maximumAttempts: 5 };

const { markStaleAgentsOffline } = proxyActivities<AgentActivities>({
  startToCloseTimeout: SWEEP_START_TO_CLOSE,
  retry: SWEEP_ACTIVITY_RETRY,
});

export async function agentOfflineSweep(input: AgentOfflineSweepInput): Promise<AgentOfflineSweepResult> {
  const { workflowId, runId } = workflowInfo();
  const r = await markStaleAgentsOffline({
    staleAfterS: input.staleAfterS,
    idempotencyPrefix: `${workflowId}/${runId}`,
  });
  if (!patched(SEAT_RECLAIM_PATCH)) return { marked: r.marked };
  const started = await Promise.all((r.agents ?? []).map(startSeatReclaimTimer));
  return { marked: r.marked, reclaimTimersStarted: started.filter(Boolean).length };
}

async function startSeatReclaimTimer(a: { agentId: string; licenseId: string; customerId: string }): Promise<boolean> {
  try {
    await startChild(agentSeatReclaim, {
      workflowId: seatReclaimWorkflowId(a.agentId),
      args: [{ agentId: a.agentId }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: new TypedSearchAttributes([
        { key: LicenseIdAttribute, value: a.licenseId },
        { key: CustomerIdAttribute, value: a.customerId },
      ]),
    });
    return true;
  } catch (err) {
    // Its timer from an earlier silence still runs, and watches this one too.
    if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
    throw err;
  }
}
