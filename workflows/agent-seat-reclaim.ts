import { continueAsNew, proxyLocalActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent-activities';
import { AGENT_ACTIVITY_RETRY, AGENT_ACTIVITY_START_TO_CLOSE } from './agent-quarantine';

/**
 * agentSeatReclaim (id `agent/<agentId>/seat-reclaim`, started by the offline sweep when it marks
 * the agent offline, with the LicenseId search attribute so Temporal Web lists it next to the
 * license): a durable timer that sleeps until the agent's last sign of life plus its license's
 * reclaim window, then asks the control plane to reclaim the seat. The control plane decides
 * (still offline, silent since that same moment, the window passed by its own clock); if the
 * agent spoke since, the timer is set again from its new last sign of life, for as long as the
 * agent holds a seat. It ends once the seat is reclaimed, the agent is deregistered otherwise or
 * quarantined, or its license reclaims no seats (window 0). Input and history carry ids and dates only.
 */
export type AgentSeatReclaimInput = { agentId: string; silentSince?: string };
export type AgentSeatReclaimResult = {
  agentId: string;
  outcome: 'reclaimed' | 'gone' | 'deregistered' | 'quarantined' | 'off';
};

export function seatReclaimWorkflowId(agentId: string): string {
  return `agent/${agentId}/seat-reclaim`;
}

/** The shortest wait between two looks (an agent past due but not yet offline, say). */
export const RECLAIM_RECHECK_MS = 60 * 60 * 1000;
/** Looks after which the workflow continues as new, keeping its history short for an agent that lives for years. */
export const RECLAIM_LOOKS_PER_RUN = 100;

/**
 * A local activity: one short transaction, run inside the workflow task, so the look and its
 * answer are one step in the history (and the time-skipping server never jumps past it).
 */
const { reclaimSeatIfSilent } = proxyLocalActivities<AgentActivities>({
  startToCloseTimeout: AGENT_ACTIVITY_START_TO_CLOSE,
  retry: AGENT_ACTIVITY_RETRY,
});

export async function agentSeatReclaim(input: AgentSeatReclaimInput): Promise<AgentSeatReclaimResult> {
  const { workflowId, runId } = workflowInfo();
  let silentSince = input.silentSince;
  for (let look = 0; look < RECLAIM_LOOKS_PER_RUN; look++) {
    const r = await reclaimSeatIfSilent({
      agentId: input.agentId,
      ...(silentSince !== undefined ? { silentSince } : {}),
      idempotencyKey: `${workflowId}/${runId}#${look}`,
    });
    if (r.outcome === 'reclaimed') return { agentId: input.agentId, outcome: 'reclaimed' };
    if (r.outcome === 'done') return { agentId: input.agentId, outcome: r.why };
    silentSince = r.silentSince;
    // How long is the control plane's to say (its clock decides); the timer only waits it out.
    await sleep(Math.max(r.dueInMs, RECLAIM_RECHECK_MS));
  }
  return continueAsNew<typeof agentSeatReclaim>({ agentId: input.agentId, ...(silentSince ? { silentSince } : {}) });
}
