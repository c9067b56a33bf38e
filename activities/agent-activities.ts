import { ApplicationFailure } from '@temporalio/activity';
import { UPDATE_REFUSED, UpdateRefused } from '../services/licenses/license-transitions';
import {
  AgentNotFound,
  type MarkStaleInput,
  type QuarantineAgentInput,
  type ReleaseAgentInput,
} from '../services/agents/quarantine-service';
import type { SeatReclaimInput } from '../services/agents/seat-reclaim-service';
import type { ActivityServices } from './create-activities';

export type { MarkStaleInput, QuarantineAgentInput, ReleaseAgentInput };

/** Activities of agentQuarantine and agentOfflineSweep, over services/agents/quarantine-service.ts. */
export function createAgentActivities(services: Pick<ActivityServices, 'quarantine' | 'seats'>) {
  const { quarantine, seats } = services;
  return {
    async quarantineAgent(input: QuarantineAgentInput): Promise<{ quarantined: boolean }> {
      try {
        return await quarantine.quarantineAgent(input);
      } catch (err) {
        if (err instanceof AgentNotFound) throw ApplicationFailure.nonRetryable(err.message, 'AGENT_NOT_FOUND');
        throw err;
      }
    },
    async releaseAgent(input: ReleaseAgentInput): Promise<{ released: boolean; status: string | null }> {
      try {
        return await quarantine.releaseAgent(input);
      } catch (err) {
        // The quarantine goes on waiting; the Update that asked fails with this message.
        if (err instanceof UpdateRefused) throw ApplicationFailure.nonRetryable(err.message, UPDATE_REFUSED);
        throw err;
      }
    },
    markStaleAgentsOffline: (input: MarkStaleInput) => quarantine.markStaleAgentsOffline(input),
    reclaimSeatIfSilent: (input: SeatReclaimInput) => seats.reclaimSeatIfSilent(input),
  };
}

export type AgentActivities = ReturnType<typeof createAgentActivities>;
