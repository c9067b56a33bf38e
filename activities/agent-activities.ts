import { ApplicationFailure } from '@temporalio/activity';
import {
  AgentNotFound,
  type MarkStaleInput,
  type QuarantineAgentInput,
  type ReleaseAgentInput,
} from '../services/agents/quarantine-service';
import type { ActivityServices } from './create-activities';

export type { MarkStaleInput, QuarantineAgentInput, ReleaseAgentInput };

/** Activities of agentQuarantine and agentOfflineSweep, over services/agents/quarantine-service.ts. */
export function createAgentActivities(services: Pick<ActivityServices, 'quarantine'>) {
  const { quarantine } = services;
  return {
    async quarantineAgent(input: QuarantineAgentInput): Promise<{ quarantined: boolean }> {
      try {
        return await quarantine.quarantineAgent(input);
      } catch (err) {
        if (err instanceof AgentNotFound) throw ApplicationFailure.nonRetryable(err.message, 'AGENT_NOT_FOUND');
        throw err;
      }
    },
    releaseAgent: (input: ReleaseAgentInput) => quarantine.releaseAgent(input),
    markStaleAgentsOffline: (input: MarkStaleInput) => quarantine.markStaleAgentsOffline(input),
  };
}

export type AgentActivities = ReturnType<typeof createAgentActivities>;
