import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import type { Pool } from 'pg';
import {
  deregisterAgent,
  getAgentWithLicense,
  listAgents,
  transitionAgentStatus,
  type AgentWithLicense,
} from '../../db/agent-status-repo';
import { withTransaction } from '../../db/pool';
import type { AgentStatus, Clock } from '../../protocol';
import { agentDeregisteredSignal, releaseAgentUpdate, agentWorkflowId } from '../../workflows/agent-quarantine';
import { UPDATE_REFUSED } from '../../workflows/license-contract';
import { actorOf, type Principal } from '../principal';
import { AppError } from '../errors';
import type { TemporalDeps } from '../temporal';
import type { UpdateOriginService } from '../licenses/update-origin';
import type { AgentView } from '../../protocol/views';

export type { AgentView };

export type AgentsServiceDeps = {
  pool: Pool;
  temporal: TemporalDeps;
  clock: Clock;
  /** Signs the release Update, so the quarantine can tell it from one made by hand. */
  origin: Pick<UpdateOriginService, 'sign'>;
  onWarning?: (message: string, err: unknown) => void;
};
/** Admins and service tokens see every customer's agents; a customer only its own. */
type Viewer = Extract<Principal, { kind: 'admin' | 'customer' | 'service' }>;

/** An Update failure that is the origin check's refusal (raised by the handler or the activity). */
function isOriginRefusal(cause: unknown): boolean {
  const failure = cause instanceof ActivityFailure ? cause.cause : cause;
  return failure instanceof ApplicationFailure && failure.type === UPDATE_REFUSED;
}

export function agentView(a: AgentWithLicense): AgentView {
  return {
    id: a.id,
    licenseId: a.license_id,
    customerId: a.customer_id,
    status: a.status,
    statusVersion: a.license_version + a.status_version,
    statusReason: a.status_reason,
    licenseState: a.license_state,
    agentVersion: a.agent_version,
    runtimeHash: a.runtime_hash,
    wantedVersion: a.wanted_version,
    update: a.update_report
      ? { outcome: a.update_report.outcome, reason: a.update_report.reason ?? null, at: a.update_report.at }
      : null,
    fingerprintScore: a.fingerprint_score,
    changedComponents: a.changed_components,
    inFlightTasks: a.in_flight_tasks,
    hostnameHint: a.hostname_hint,
    reportedTerminalReason: a.reported_terminal_reason,
    reportedTerminalAt: a.reported_terminal_at?.toISOString() ?? null,
    acknowledgedStatusVersion: a.acknowledged_status_version,
    lastHeartbeatAt: a.last_heartbeat_at?.toISOString() ?? null,
    createdAt: a.created_at.toISOString(),
    deregisteredAt: a.deregistered_at?.toISOString() ?? null,
  };
}

/**
 * Tells a quarantine waiting for release that there is nothing left to release. Best effort: the
 * seat is already free, and releasing a deregistered agent changes nothing.
 */
export async function endQuarantineOnDeregistration(
  temporal: TemporalDeps,
  agentId: string,
  onWarning?: (message: string, err: unknown) => void,
): Promise<void> {
  try {
    await temporal.client.workflow.getHandle(agentWorkflowId(agentId)).signal(agentDeregisteredSignal);
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError))
      onWarning?.('could not tell the quarantine workflow about a deregistration', err);
  }
}

const NOT_FOUND = () => new AppError('NOT_FOUND', 'No such agent.');

/** Admin and portal views of agents, and the admin release of a quarantined agent. */
export function createAgentsService(deps: AgentsServiceDeps) {
  /** The agent if the viewer may see it; another customer's agent does not exist for them. */
  async function visibleAgent(viewer: Viewer, agentId: string): Promise<AgentWithLicense> {
    const agent = await getAgentWithLicense(deps.pool, agentId);
    if (!agent || (viewer.kind === 'customer' && agent.customer_id !== viewer.customerId)) throw NOT_FOUND();
    return agent;
  }

  return {
    async list(
      viewer: Viewer,
      q: { licenseId?: string; customerId?: string; status?: AgentStatus; after?: string; limit?: number },
    ) {
      const limit = q.limit ?? 50;
      const customerId = viewer.kind === 'customer' ? viewer.customerId : q.customerId;
      const rows = await listAgents(deps.pool, {
        ...(customerId ? { customerId } : {}),
        ...(q.licenseId ? { licenseId: q.licenseId } : {}),
        ...(q.status ? { status: q.status } : {}),
        ...(q.after ? { after: q.after } : {}),
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      return { items: page.map(agentView), nextCursor: rows.length > limit ? page[page.length - 1]!.id : null };
    },

    async get(viewer: Viewer, agentId: string): Promise<AgentView> {
      return agentView(await visibleAgent(viewer, agentId));
    },

    /**
     * Releases a quarantined agent through its agentQuarantine workflow (a Workflow Update: the
     * answer comes after the release committed). If no workflow is waiting (terminated by an
     * operator), the same audited transition runs here.
     */
    async release(admin: Extract<Principal, { kind: 'admin' }>, agentId: string): Promise<AgentView> {
      const agent = await visibleAgent(admin, agentId);
      if (agent.status !== 'quarantined')
        throw new AppError('CONFLICT', `The agent is ${agent.status}, not quarantined.`);
      const handle = deps.temporal.client.workflow.getHandle(agentWorkflowId(agentId));
      let viaWorkflow = true;
      try {
        const r = await handle.executeUpdate(releaseAgentUpdate, {
          args: [
            deps.origin.sign(agentWorkflowId(agentId), 'releaseAgent', {
              actor: { kind: 'admin' as const, id: admin.id },
            }),
          ],
        });
        if (!r.released) viaWorkflow = false;
      } catch (err) {
        // Our own release refused by the origin check (the worker reads another update-origin
        // secret): releasing in the database behind the quarantine's back would leave it waiting
        // on a released agent, and a later detection would join it instead of quarantining.
        if (err instanceof WorkflowUpdateFailedError && isOriginRefusal(err.cause))
          throw new AppError(
            'UNAVAILABLE',
            "The agent's quarantine did not accept this server's origin proof (the API and worker must share the update-origin secret); nothing changed.",
          );
        if (err instanceof WorkflowNotFoundError || err instanceof WorkflowUpdateFailedError) viaWorkflow = false;
        else throw new AppError('UNAVAILABLE', 'The workflow service did not answer; try again.');
      }
      if (!viaWorkflow) {
        await withTransaction(deps.pool, (tx) =>
          transitionAgentStatus(
            tx,
            {
              agentId,
              from: ['quarantined'],
              to: 'active',
              reason: null,
              actor: { kind: 'admin', id: admin.id },
              action: 'agent.released',
              data: { workflow: false },
            },
            deps.clock,
          ),
        );
      }
      return agentView((await getAgentWithLicense(deps.pool, agentId))!);
    },

    /** Frees the seat of a lost or retired machine; a customer may do this for its own agents. */
    async deregister(viewer: Viewer, agentId: string): Promise<AgentView> {
      await visibleAgent(viewer, agentId);
      const r = await withTransaction(deps.pool, (tx) =>
        deregisterAgent(tx, { agentId, actor: actorOf(viewer), reason: `deregistered by ${viewer.kind}` }, deps.clock),
      );
      if (!r.changed) throw new AppError('CONFLICT', 'The agent is already deregistered.');
      await endQuarantineOnDeregistration(deps.temporal, agentId, deps.onWarning);
      return agentView(r.agent!);
    },
  };
}

export type AgentsService = ReturnType<typeof createAgentsService>;
