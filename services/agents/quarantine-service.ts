import { listStaleAgentIds, lockIfStale, transitionAgentStatus } from '../../db/agent-status-repo';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { spendOriginNonce } from '../../db/update-origin-repo';
import type { Pool } from 'pg';
import type { Clock } from '../../protocol';
import { agentWorkflowId, type QuarantineReason } from '../../workflows/agent-quarantine';
import {
  argsDigest,
  claimedActor,
  NonceSpent,
  UpdateRefused,
  type OriginRefusal,
  type UpdateOriginService,
} from '../licenses/update-origin';

/**
 * The status changes agentQuarantine and agentOfflineSweep make. Each is one transaction
 * (row + status_version, status feed, NOTIFY at commit, audit) keyed by workflow id + run + step,
 * so a retried step writes nothing twice.
 */
export type QuarantineAgentInput = {
  agentId: string;
  reason: QuarantineReason;
  detectedAt: string;
  idempotencyKey: string;
};
export type ReleaseAgentInput = {
  agentId: string;
  actor: { kind: 'admin'; id: string };
  idempotencyKey: string;
  /**
   * Set by quarantines past RELEASE_ORIGIN_PATCH: the release Update's arguments as received
   * (origin proof included) and the workflow's time. The release is applied only if the proof
   * verifies; absent in inputs recorded before the patch.
   */
  origin?: { update: string; args: unknown; at: string };
};
export type MarkStaleInput = { staleAfterS: number; idempotencyPrefix: string };

const SWEEP_BATCH = 200;

/** The agent is gone: no retry can bring it back. */
export class AgentNotFound extends Error {
  constructor(readonly agentId: string) {
    super(`agent ${agentId} does not exist`);
    this.name = 'AgentNotFound';
  }
}

export function createQuarantineService(deps: { pool: Pool; clock: Clock; origin: UpdateOriginService }) {
  /** Audits a release the API did not sign, and throws UpdateRefused (the agent stays quarantined). */
  async function refuse(input: ReleaseAgentInput, reason: OriginRefusal): Promise<never> {
    const origin = input.origin!;
    const workflowId = agentWorkflowId(input.agentId);
    await withTransaction(deps.pool, (tx) =>
      appendAudit(
        tx,
        {
          actor: { kind: 'workflow', id: workflowId },
          action: 'agent.release_refused',
          subject: { kind: 'agent', id: input.agentId },
          data: {
            update: 'releaseAgent',
            origin: 'unauthenticated',
            reason,
            claimedActor: claimedActor((origin.args as { actor?: unknown } | null)?.actor),
            at: origin.at,
          },
          idempotencyKey: `${workflowId}#release-refused#${origin.at}#${argsDigest(origin.args)}`.slice(0, 300),
        },
        deps.clock,
      ),
    );
    throw new UpdateRefused(`agent ${input.agentId}`, reason);
  }

  /** The spendable nonce of a release the API signed; refuses (audited) any other. */
  async function checkOrigin(input: ReleaseAgentInput): Promise<string> {
    const origin = input.origin!;
    const verdict = deps.origin.verify({
      workflowId: agentWorkflowId(input.agentId),
      update: origin.update,
      args: origin.args,
      at: new Date(origin.at),
      actor: input.actor,
    });
    return verdict.ok ? verdict.nonce : refuse(input, verdict.reason);
  }

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
      const nonce = input.origin === undefined ? null : await checkOrigin(input);
      let r: Awaited<ReturnType<typeof transitionAgentStatus>>;
      try {
        r = await withTransaction(deps.pool, async (tx) => {
          const t = await transitionAgentStatus(
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
          );
          // Spent with the release itself; a retry of a committed release changes nothing and spends nothing.
          if (nonce !== null && t.changed) {
            const now = deps.clock.now();
            const spent = await spendOriginNonce(tx, {
              nonce,
              workflowId: agentWorkflowId(input.agentId),
              at: now,
              forgetBefore: new Date(now.getTime() - 2 * deps.origin.maxAgeMs),
            });
            if (!spent) throw new NonceSpent();
          }
          return t;
        });
      } catch (err) {
        if (err instanceof NonceSpent) return refuse(input, 'replayed');
        throw err;
      }
      return { released: r.agent?.status === 'active', status: r.agent?.status ?? null };
    },

    /**
     * Marks active agents silent for `staleAfterS` offline, in batches; returns how many, and which
     * (with their licenses: the sweep starts their seat-reclaim timers).
     */
    async markStaleAgentsOffline(
      input: MarkStaleInput,
    ): Promise<{ marked: number; agents: Array<{ agentId: string; licenseId: string; customerId: string }> }> {
      const before = new Date(deps.clock.now().getTime() - input.staleAfterS * 1000);
      let marked = 0;
      const agents: Array<{ agentId: string; licenseId: string; customerId: string }> = [];
      for (;;) {
        const ids = await listStaleAgentIds(deps.pool, before, SWEEP_BATCH);
        const markedBefore = marked;
        for (const agentId of ids) {
          const r = await withTransaction(deps.pool, async (tx) => {
            // Re-checked under the row lock: a heartbeat may have arrived since the list was read.
            if (!(await lockIfStale(tx, agentId, before))) return { changed: false, agent: null };
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
          if (r.changed && r.agent) {
            marked += 1;
            agents.push({ agentId, licenseId: r.agent.license_id, customerId: r.agent.customer_id });
          }
        }
        if (ids.length < SWEEP_BATCH || marked === markedBefore) return { marked, agents };
      }
    },
  };
}

export type QuarantineService = ReturnType<typeof createQuarantineService>;
