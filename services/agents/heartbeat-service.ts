import type { Pool } from 'pg';
import {
  deregisterAgent,
  getAgentWithLicense,
  recordHeartbeat,
  transitionAgentStatus,
  type AgentWithLicense,
} from '../../db/agent-status-repo';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { getReleaseByVersion, hasAnyRelease } from '../../db/releases-repo';
import { extendLeases } from '../../db/tasks-repo';
import {
  compareReleaseVersions,
  FINGERPRINT_COMPONENTS,
  isReleaseVersion,
  scoreFingerprint,
  type Clock,
  type FingerprintComponent,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type SignedLicense,
  type SignedStatus,
} from '../../protocol';
import type { QuarantineReason } from '../../workflows/agent-quarantine';
import { startAgentQuarantine } from './start-quarantine';
import type { CredentialRotation, NextCredential } from './credential-rotation';
import type { AgentIdentity } from '../agent-status/agent-credentials';
import { endQuarantineOnDeregistration } from './agents-service';
import type { Principal } from '../principal';
import { AppError } from '../errors';
import type { TemporalDeps } from '../temporal';

export type AgentSettings = { heartbeatIntervalMs: number; fingerprintThreshold: number; taskLeaseMs: number };
export type AgentPrincipal = Extract<Principal, { kind: 'agent' }>;
export const DEFAULT_QUARANTINE_WAIT_MS = 5000;
const QUARANTINE_POLL_MS = 20;

/** The signed status of one agent (the status service's currentStatus). */
export type CurrentStatus = (agentId: string) => Promise<SignedStatus | undefined>;
/** The license document re-issued for the agent when newer than the version it holds (the status service's). */
export type ReissuedLicense = (agentId: string, held: number | undefined) => Promise<SignedLicense | undefined>;

export type HeartbeatServiceDeps = {
  pool: Pool;
  temporal: TemporalDeps;
  clock: Clock;
  settings: AgentSettings;
  currentStatus: CurrentStatus;
  reissuedLicense?: ReissuedLicense;
  /** Rotates the credential of agents that ask for it (absent: no rotation). */
  credentialRotation?: Pick<CredentialRotation, 'rotate' | 'detectClone'>;
  /** The update policy and wanted release, for agents that update themselves (the agent-update service's). */
  updateDirective?: (agentId: string) => Promise<NonNullable<HeartbeatResponse['update']>>;
  onWarning?: (message: string, err: unknown) => void;
  onQuarantineStarted?: (reason: QuarantineReason) => void;
  /** How long a heartbeat that triggered a quarantine waits for it to commit (default 5 s). */
  quarantineWaitMs?: number;
};

/** What the runtime hash check concluded; `unverified` only while no release at all is registered. */
export type IntegrityVerdict = { ok: true; verified: boolean } | { ok: false; expected: string | null };

/**
 * Heartbeats (store what the agent reports, detect tampering and machine changes, bring an
 * offline agent back) and deregistration. Quarantine itself is the agentQuarantine workflow's job;
 * this service only detects, audits the detection and starts the workflow after commit.
 */
export function createHeartbeatService(deps: HeartbeatServiceDeps) {
  const intervalS = Math.round(deps.settings.heartbeatIntervalMs / 1000);

  async function lockLiveAgent(
    tx: Parameters<typeof getAgentWithLicense>[0],
    principal: AgentPrincipal,
  ): Promise<AgentWithLicense> {
    const agent = await getAgentWithLicense(tx, principal.id, { lock: true });
    // The credential resolver already refuses deregistered agents; this closes the race with a concurrent deregistration.
    if (!agent || agent.license_id !== principal.licenseId || agent.status === 'deregistered') {
      throw new AppError('UNAUTHENTICATED', 'This agent credential is no longer valid.');
    }
    return agent;
  }

  async function startQuarantine(principal: AgentPrincipal, reason: QuarantineReason, detectedAt: Date): Promise<void> {
    try {
      await startAgentQuarantine(deps.temporal, principal, reason, detectedAt);
      deps.onQuarantineStarted?.(reason);
    } catch {
      // The detection is audited; the agent's next heartbeat detects again and retries the start.
      throw new AppError('UNAVAILABLE', 'The control plane could not record this heartbeat; try again.');
    }
  }

  /**
   * The workflow quarantines within milliseconds when the worker is up; waiting (bounded) for it
   * lets this very answer tell the agent to stop, instead of only its next status long-poll.
   */
  async function awaitQuarantined(agentId: string): Promise<void> {
    const deadline = performance.now() + (deps.quarantineWaitMs ?? DEFAULT_QUARANTINE_WAIT_MS);
    while (performance.now() < deadline) {
      const agent = await getAgentWithLicense(deps.pool, agentId);
      if (!agent || (agent.status !== 'active' && agent.status !== 'offline')) return;
      await new Promise((r) => setTimeout(r, QUARANTINE_POLL_MS));
    }
  }

  return {
    heartbeatIntervalS: intervalS,

    /**
     * `presenter`: the credential the heartbeat was made with and the client's address (its
     * credential is rotated when the agent sends `credentialGeneration`).
     */
    async heartbeat(
      principal: AgentPrincipal,
      hb: HeartbeatRequest,
      presenter?: { credential: string; ip: string; identity: Pick<AgentIdentity, 'credentialHash' | 'generation'> },
    ): Promise<HeartbeatResponse> {
      const at = deps.clock.now();
      let next: NextCredential | null = null;
      const outcome = await withTransaction(deps.pool, async (tx) => {
        const agent = await lockLiveAgent(tx, principal);
        if (presenter && deps.credentialRotation) {
          const rotated = await deps.credentialRotation.rotate(tx, {
            agentId: agent.id,
            presented: presenter.credential,
            ip: presenter.ip,
            wanted: hb.credentialGeneration !== undefined,
          });
          if (rotated === 'clone') return 'clone' as const;
          next = rotated;
        }
        // The score is recomputed here from the activation record; the agent's own figure can only lower it.
        const server = scoreFingerprint(agent.fingerprint, hb.fingerprint);
        const score = Math.min(server.score, hb.score);
        const changed: FingerprintComponent[] = FINGERPRINT_COMPONENTS.filter(
          (c) => server.changed.includes(c) || hb.changedComponents.includes(c),
        );
        await recordHeartbeat(tx, agent.id, {
          agentVersion: hb.agentVersion,
          runtimeHash: hb.runtimeHash,
          fingerprint: hb.fingerprint,
          score,
          changedComponents: changed,
          inFlightTasks: hb.inFlightTasks,
          terminalReason: hb.terminalReason,
          statusVersion: hb.statusVersion,
          at,
          ...(hb.update ? { update: hb.update } : {}),
          reachedWanted: reached(agent.wanted_version, hb.agentVersion),
        });
        if (hb.inFlightTasks > 0) await extendLeases(tx, agent.id, at, deps.settings.taskLeaseMs);

        const integrity = await checkIntegrity(tx, hb.agentVersion, hb.runtimeHash);
        let reason: QuarantineReason | null = null;
        const watching = agent.status === 'active' || agent.status === 'offline';
        if (!integrity.ok) {
          reason = 'integrity_mismatch';
          if (watching) {
            await appendAudit(
              tx,
              {
                actor: { kind: 'agent', id: agent.id },
                action: 'agent.integrity_mismatch',
                subject: { kind: 'agent', id: agent.id },
                data: {
                  licenseId: agent.license_id,
                  agentVersion: hb.agentVersion,
                  reportedRuntimeHash: hb.runtimeHash,
                  expectedRuntimeHash: integrity.expected,
                },
              },
              deps.clock,
            );
          }
        } else if (score < deps.settings.fingerprintThreshold) {
          reason = 'fingerprint_mismatch';
          if (watching) {
            await appendAudit(
              tx,
              {
                actor: { kind: 'agent', id: agent.id },
                action: 'agent.fingerprint_mismatch',
                subject: { kind: 'agent', id: agent.id },
                data: {
                  licenseId: agent.license_id,
                  score,
                  threshold: deps.settings.fingerprintThreshold,
                  changedComponents: changed,
                },
              },
              deps.clock,
            );
          }
        }
        if (!reason && agent.status === 'offline') {
          await transitionAgentStatus(
            tx,
            {
              agentId: agent.id,
              from: ['offline'],
              to: 'active',
              reason: null,
              actor: { kind: 'agent', id: agent.id },
              action: 'agent.online',
              data: { lastHeartbeatAt: agent.last_heartbeat_at?.toISOString() ?? null },
            },
            deps.clock,
          );
        }
        return watching && reason ? reason : null;
      });
      if (outcome === 'clone')
        return deps.credentialRotation!.detectClone(
          {
            ...principal,
            ...presenter!.identity,
            generation: { ...presenter!.identity.generation, role: 'superseded' },
          },
          presenter!.ip,
        );
      const quarantine = outcome;
      if (quarantine) {
        await startQuarantine(principal, quarantine, at);
        await awaitQuarantined(principal.id);
      }
      const status = await deps.currentStatus(principal.id);
      if (!status) throw new AppError('UNAUTHENTICATED', 'This agent credential is no longer valid.');
      const license = await deps.reissuedLicense?.(principal.id, hb.licenseVersion);
      // Only an agent that reports update checks reads the answer's `update` (older ones refuse unknown fields).
      const update = hb.update ? await deps.updateDirective?.(principal.id) : undefined;
      const nextCredential = next as NextCredential | null;
      return {
        status,
        heartbeatIntervalS: intervalS,
        ...(license ? { license } : {}),
        ...(update ? { update } : {}),
        ...(nextCredential ? { nextCredential } : {}),
      };
    },

    /** Frees the license seat: the agent is deregistered, its open tasks cancelled, its credential dead. */
    async deregister(principal: AgentPrincipal): Promise<{ agentId: string; status: 'deregistered' }> {
      await withTransaction(deps.pool, async (tx) => {
        const agent = await lockLiveAgent(tx, principal);
        await deregisterAgent(
          tx,
          { agentId: agent.id, actor: { kind: 'agent', id: agent.id }, reason: 'deregistered by the agent' },
          deps.clock,
        );
      });
      await endQuarantineOnDeregistration(deps.temporal, principal.id, deps.onWarning);
      return { agentId: principal.id, status: 'deregistered' };
    },
  };
}

/** The agent runs the release an admin asked for (or a later one): the request is done. */
function reached(wanted: string | null, running: string): boolean {
  return wanted !== null && isReleaseVersion(running) && compareReleaseVersions(running, wanted) >= 0;
}

/**
 * The runtime hash must equal the one in the signed manifest of the version the agent reports.
 * Once any release is registered, a version without a manifest is a mismatch too; before that
 * (a fresh install that has published nothing) there is nothing to compare against.
 */
async function checkIntegrity(
  tx: Parameters<typeof getReleaseByVersion>[0],
  version: string,
  runtimeHash: string,
): Promise<IntegrityVerdict> {
  const release = await getReleaseByVersion(tx, version);
  if (release)
    return release.runtime_hash === runtimeHash
      ? { ok: true, verified: true }
      : { ok: false, expected: release.runtime_hash };
  return (await hasAnyRelease(tx)) ? { ok: false, expected: null } : { ok: true, verified: false };
}

export type HeartbeatService = ReturnType<typeof createHeartbeatService>;
