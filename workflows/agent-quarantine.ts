import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent-activities';
import type { RetryPolicy } from '@temporalio/common';
import { UPDATE_REFUSED, type UpdateOrigin } from './license-contract';

/**
 * agentQuarantine (id `agent/<agentId>`): a heartbeat reported a tampered runtime or a machine
 * that no longer matches its activation record, or a superseded credential generation showed that
 * two machines share the agent's identity (`clone_detected`). Quarantine the agent (one activity, one
 * transaction: row, status feed, NOTIFY, audit), then wait for an admin to release it.
 * Payloads carry ids, codes and dates only.
 */
export type QuarantineReason = 'integrity_mismatch' | 'fingerprint_mismatch' | 'clone_detected';
export type AgentQuarantineInput = { agentId: string; reason: QuarantineReason; detectedAt: string };
/** `origin`: the API's proof that it sent the release (see license-contract.ts, UpdateOrigin). */
export type AgentReleaseRequest = { actor: { kind: 'admin'; id: string }; origin?: UpdateOrigin };
export type AgentReleaseResult = { agentId: string; released: boolean; status: string | null };
export type QuarantinePhase = 'quarantining' | 'quarantined' | 'released' | 'ended';
export type AgentQuarantineResult = { agentId: string; outcome: 'released' | 'not_quarantinable' | 'deregistered' };

export const releaseAgentUpdate = defineUpdate<AgentReleaseResult, [AgentReleaseRequest]>('releaseAgent');
/** Sent when the agent deregisters while quarantined: nothing is left to release. */
export const agentDeregisteredSignal = defineSignal('agentDeregistered');
export const quarantinePhaseQuery = defineQuery<QuarantinePhase>('quarantinePhase');
/**
 * Quarantines that record this patch hand the release request (with its origin proof) to the
 * release activity, which refuses one the API did not sign; the quarantine then waits on.
 */
export const RELEASE_ORIGIN_PATCH = 'release-origin-proof';

export function agentWorkflowId(agentId: string): string {
  return `agent/${agentId}`;
}

export const AGENT_ACTIVITY_START_TO_CLOSE = '30 seconds';
/** A status change is one short transaction: retried until PostgreSQL answers. */
export const AGENT_ACTIVITY_RETRY: RetryPolicy = {
  initialInterval: '1 second',
  maximumInterval: '30 seconds',
  backoffCoefficient: 2,
};

const { quarantineAgent, releaseAgent } = proxyActivities<AgentActivities>({
  startToCloseTimeout: AGENT_ACTIVITY_START_TO_CLOSE,
  retry: AGENT_ACTIVITY_RETRY,
});

export async function agentQuarantine(input: AgentQuarantineInput): Promise<AgentQuarantineResult> {
  const { workflowId, runId } = workflowInfo();
  const key = (step: string) => `${workflowId}/${runId}#${step}`;
  let phase: QuarantinePhase = 'quarantining';
  let request: AgentReleaseRequest | undefined;
  let result: AgentReleaseResult | undefined = undefined;
  let deregistered = false;

  setHandler(quarantinePhaseQuery, () => phase);
  setHandler(agentDeregisteredSignal, () => {
    deregistered = true;
  });
  /** Release requests the activity refused (not signed by the API), with the refusal. */
  const refused = new Map<AgentReleaseRequest, string>();
  setHandler(
    releaseAgentUpdate,
    async (req) => {
      for (;;) {
        request ??= req;
        const pending = request;
        await condition(() => result !== undefined || phase === 'ended' || refused.has(pending));
        if (result !== undefined || phase === 'ended')
          return result ?? { agentId: input.agentId, released: false, status: null };
        if (pending === req)
          throw ApplicationFailure.create({ type: UPDATE_REFUSED, message: refused.get(req)!, nonRetryable: true });
        // Another request, taken first, was refused: this one is tried next.
      }
    },
    {
      validator: (req) => {
        if (req?.actor?.kind !== 'admin' || typeof req.actor.id !== 'string' || req.actor.id.length === 0) {
          throw new Error('only an admin may release a quarantined agent');
        }
        if (phase === 'released' || phase === 'ended') throw new Error('this quarantine is already over');
      },
    },
  );

  const q = await quarantineAgent({
    agentId: input.agentId,
    reason: input.reason,
    detectedAt: input.detectedAt,
    idempotencyKey: key('quarantine'),
  });
  if (!q.quarantined) {
    phase = 'ended';
    await condition(allHandlersFinished);
    return { agentId: input.agentId, outcome: 'not_quarantinable' };
  }
  phase = 'quarantined';

  for (;;) {
    await condition(() => request !== undefined || deregistered);
    if (!request) {
      phase = 'ended';
      await condition(allHandlersFinished);
      return { agentId: input.agentId, outcome: 'deregistered' };
    }
    const req = request;
    try {
      const r = await releaseAgent({
        agentId: input.agentId,
        actor: req.actor,
        idempotencyKey: key('release'),
        ...(patched(RELEASE_ORIGIN_PATCH)
          ? { origin: { update: 'releaseAgent', args: req, at: new Date(Date.now()).toISOString() } }
          : {}),
      });
      result = { agentId: input.agentId, released: r.released, status: r.status };
      break;
    } catch (err) {
      const failure = err instanceof ActivityFailure ? err.cause : err;
      if (!(failure instanceof ApplicationFailure && failure.type === UPDATE_REFUSED)) throw err;
      // Not from the API: that Update fails, the agent stays quarantined, and the next request is awaited.
      refused.set(req, failure.message);
      request = undefined;
    }
  }
  phase = 'released';
  await condition(allHandlersFinished);
  return { agentId: input.agentId, outcome: 'released' };
}
