import { listStaleAgentIds, lockIfStale, transitionAgentStatus } from '../../db/agent-status-repo';
import { withTransaction } from '../../db/pool';
import type { Pool } from 'pg';
import type { Clock } from '../../protocol';

/**
 * The status changes agentQuarantine and agentOfflineSweep make. Each is one transaction
 * (row + status_version, status feed, NOTIFY at commit, audit) keyed by workflow id + run + step,
 * so a retried step writes nothing twice.
 */
export type QuarantineAgentInput = {
  agentId: string;
  reason: 'integrity_mismatch' | 'fingerprint_mismatch';
  detectedAt: string;
  idempotencyKey: string;
};
export type ReleaseAgentInput = { agentId: string; actor: { kind: 'admin'; id: string }; idempotencyKey: string };
export type MarkStaleInput = { staleAfterS: number; idempotencyPrefix: string };

const SWEEP_BATCH = 200;

/** The agent is gone: no retry can bring it back. */
export class AgentNotFound extends Error {
  constructor(readonly agentId: string) {
    super(`agent ${agentId} does not exist`);
    this.name = 'AgentNotFound';
  }
}

export function createQuarantineService(deps: { pool: Pool; clock: Clock }) {
  return {
    /** Quarantines an active or offline agent; `quarantined` says whether it now is. */
    async quarantineAgent(input: QuarantineAgentInput): Promise<{ quarantined: boolean }> {
      const r = await withTransaction(deps.pool, (tx) =>
        transitionAgentStatus(
          tx,
          {
            agentId: input.agentId,
            from: ['active', 'offline'],
            to: 'quarantined',
            reason: input.reason,
            actor: { kind: 'workflow', id: `agent/${input.agentId}` },
            action: 'agent.quarantined',
            data: { detectedAt: input.detectedAt },
            idempotencyKey: input.idempotencyKey,
          },
          deps.clock,
        ),
      );
      if (!r.agent) throw new AgentNotFound(input.agentId);
      return { quarantined: r.agent.status === 'quarantined' };
    },

    /** Releases a quarantined agent back to active, in the admin's name. */
    async releaseAgent(input: ReleaseAgentInput): Promise<{ released: boolean; status: string | null }> {
      const r = await withTransaction(deps.pool, (tx) =>
        transitionAgentStatus(
          tx,
          {
            agentId: input.agentId,
            from: ['quarantined'],
            to: 'active',
            reason: null,
            actor: { kind: 'admin', id: input.actor.id },
            action: 'agent.released',
            idempotencyKey: input.idempotencyKey,
          },
          deps.clock,
        ),
      );
      return { released: r.agent?.status === 'active', status: r.agent?.status ?? null };
    },

    /** Marks active agents silent for `staleAfterS` offline, in batches; returns how many. */
    async markStaleAgentsOffline(input: MarkStaleInput): Promise<{ marked: number }> {
      const before = new Date(deps.clock.now().getTime() - input.staleAfterS * 1000);
      let marked = 0;
      for (;;) {
        const ids = await listStaleAgentIds(deps.pool, before, SWEEP_BATCH);
        const markedBefore = marked;
        for (const agentId of ids) {
          const r = await withTransaction(deps.pool, async (tx) => {
            // Re-checked under the row lock: a heartbeat may have arrived since the list was read.
            if (!(await lockIfStale(tx, agentId, before))) return { changed: false };
            return transitionAgentStatus(
              tx,
              {
                agentId,
                from: ['active'],
                to: 'offline',
                reason: 'no heartbeat',
                actor: { kind: 'system', id: 'agent-offline-sweep' },
                action: 'agent.offline',
                data: { staleAfterS: input.staleAfterS },
                idempotencyKey: `${input.idempotencyPrefix}#offline/${agentId}`,
              },
              deps.clock,
            );
          });
          if (r.changed) marked += 1;
        }
        if (ids.length < SWEEP_BATCH || marked === markedBefore) return { marked };
      }
    },
  };
}

export type QuarantineService = ReturnType<typeof createQuarantineService>;
