import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import {
  addPendingCredential,
  isCurrentCredential,
  lockCredentialState,
  promoteNextCredential,
  recordCredentialUse,
} from '../../db/agent-credentials-repo';
import { getAgentWithLicense } from '../../db/agent-status-repo';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction, type Tx } from '../../db/pool';
import {
  canDescribeAgent,
  CREDENTIAL_SECRET_BYTES,
  formatAgentCredential,
  newSecret,
  PROOF_WINDOW_MS,
  type Clock,
} from '../../protocol';
import type { AgentIdentity } from '../agent-status/agent-credentials';
import { AppError } from '../errors';
import { sha256Hex } from '../secrets';
import type { TemporalDeps } from '../temporal';
import { startAgentQuarantine } from './start-quarantine';

/**
 * How long after the current generation's first use the previous one is still accepted, by
 * requests that do not rotate: a request made with it before the switch (a task report, a retry)
 * carries a proof at most this old, so nothing made before the switch is still valid later.
 */
export const PREVIOUS_CREDENTIAL_GRACE_MS = PROOF_WINDOW_MS;

export type NextCredential = { credential: string; generation: number };
type Presenter = Pick<AgentIdentity, 'id' | 'licenseId' | 'customerId' | 'credentialHash' | 'generation'>;

/** A fresh credential of `generation`, naming its agent when the id allows (newId('agt') ids do). */
export function newAgentCredential(agentId: string, generation: number): string {
  return canDescribeAgent(agentId)
    ? formatAgentCredential(agentId, generation, randomBytes(CREDENTIAL_SECRET_BYTES))
    : newSecret('agc');
}

/**
 * Credential rotation and clone detection (issue 14). The heartbeat issues a next generation (a
 * heartbeat repeated before one was used, its answer lost, is issued another); the first one used
 * (by any request) becomes current, supersedes the one before and voids its siblings. Presenting a superseded generation
 * while proving possession of the agent's key means a second machine runs with a copy of the
 * agent's state: the agent is quarantined (`clone_detected`) and the request refused.
 */
export function createCredentialRotation(deps: {
  pool: Pool;
  temporal: TemporalDeps;
  clock: Clock;
  onWarning?: (message: string, err: unknown) => void;
  onQuarantineStarted?: () => void;
  /** The credential of this agent moved to a new generation (drops what the lookup remembers). */
  onPromoted?: (agentId: string) => void;
}) {
  /** Audits the detection (once per quarantine) and starts the quarantine after commit. */
  async function detectClone(agent: Presenter, ip: string): Promise<never> {
    const at = deps.clock.now();
    const audited = await withTransaction(deps.pool, async (tx) => {
      const row = await getAgentWithLicense(tx, agent.id, { lock: true });
      if (!row || (row.status !== 'active' && row.status !== 'offline')) return false;
      const state = await lockCredentialState(tx, agent.id);
      await appendAudit(
        tx,
        {
          actor: { kind: 'agent', id: agent.id },
          action: 'agent.clone_detected',
          subject: { kind: 'agent', id: agent.id },
          data: {
            licenseId: agent.licenseId,
            reason: 'clone_detected',
            presentedGeneration: agent.generation.presented,
            currentGeneration: Number(state?.credential_generation ?? agent.generation.current),
            presentedIp: ip.slice(0, 64),
            currentIp: state?.credential_used_ip ?? null,
          },
        },
        deps.clock,
      );
      return true;
    });
    if (audited) {
      try {
        await startAgentQuarantine(deps.temporal, agent, 'clone_detected', at);
        deps.onQuarantineStarted?.();
      } catch (err) {
        // Audited; the next request with a superseded generation detects it again and retries.
        deps.onWarning?.('could not start the quarantine of a cloned agent', err);
      }
    }
    throw new AppError(
      'CREDENTIAL_SUPERSEDED',
      'This agent credential was superseded by a newer generation: another machine runs with a copy of this agent. The agent is quarantined; re-activate this machine with a new activation token.',
    );
  }

  return {
    /**
     * Called once a request's proof of possession verified. The next generation's first use
     * makes it current; the previous one is still accepted shortly after by requests that do not
     * rotate; anything older, or the previous one on a heartbeat, is a clone.
     */
    async admit(agent: Presenter, req: { ip: string; rotating: boolean }): Promise<void> {
      const g = agent.generation;
      if (g.role === 'current') return;
      if (g.role === 'next') {
        const promoted = await withTransaction(deps.pool, async (tx) => {
          if (!(await lockCredentialState(tx, agent.id))) return false;
          const p = { agentId: agent.id, hash: agent.credentialHash, ip: req.ip, at: deps.clock.now() };
          return promoteNextCredential(tx, p);
        });
        if (promoted) deps.onPromoted?.(agent.id);
        // Not promoted: a sibling was used first (or this one already was); judged as what it now is.
        else if (!(await isCurrentCredential(deps.pool, agent.id, agent.credentialHash)))
          await detectClone(agent, req.ip);
        return;
      }
      const recent =
        g.role === 'previous' &&
        g.supersededAt !== null &&
        deps.clock.now().getTime() - g.supersededAt.getTime() <= PREVIOUS_CREDENTIAL_GRACE_MS;
      if (recent && !req.rotating) return;
      await detectClone(agent, req.ip);
    },

    /**
     * In the heartbeat's transaction (the agent row locked): the generation the heartbeat was made
     * with must be the current one (an issued one is promoted first). Issues a next generation;
     * `clone` when the heartbeat was made with any other (the lookup that let it in was a moment old).
     */
    async rotate(
      tx: Tx,
      p: { agentId: string; presented: string; ip: string; wanted: boolean },
    ): Promise<NextCredential | 'clone' | null> {
      const hash = sha256Hex(p.presented);
      const at = deps.clock.now();
      let state = await lockCredentialState(tx, p.agentId);
      if (!state) return null;
      if (await promoteNextCredential(tx, { agentId: p.agentId, hash, ip: p.ip, at })) {
        deps.onPromoted?.(p.agentId);
        state = (await lockCredentialState(tx, p.agentId))!;
      }
      if (state.credential_hash !== hash) return 'clone';
      if (!p.wanted) {
        await recordCredentialUse(tx, p.agentId, p.ip);
        return null;
      }
      const generation = Number(state.credential_generation) + 1;
      const credential = newAgentCredential(p.agentId, generation);
      await addPendingCredential(tx, { agentId: p.agentId, hash: sha256Hex(credential), ip: p.ip, at });
      return { credential, generation };
    },

    detectClone,
  };
}

export type CredentialRotation = ReturnType<typeof createCredentialRotation>;
