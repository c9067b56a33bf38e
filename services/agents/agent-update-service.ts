import type { Pool } from 'pg';
import { getAgentWithLicense, setWantedVersion } from '../../db/agent-status-repo';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction, type Queryable } from '../../db/pool';
import { getReleaseByVersion } from '../../db/releases-repo';
import { compareReleaseVersions, type Clock } from '../../protocol';
import type { Principal } from '../principal';
import { AppError } from '../errors';
import { agentView, type AgentView } from './agents-service';

/** A release agents can be sent to: published, not yanked, with an artifact in the repository (else 404/409). */
export async function requireOfferedRelease(tx: Queryable, version: string): Promise<void> {
  const release = await getReleaseByVersion(tx, version);
  if (!release) throw new AppError('NOT_FOUND', `No release ${version} is published.`);
  if (release.yanked_at) throw new AppError('CONFLICT', `Release ${version} was yanked; it is offered to no agent.`);
  if (!release.tarball_target)
    throw new AppError('CONFLICT', `Release ${version} has no artifact in the distribution repository to install.`);
}

export type AgentUpdateServiceDeps = { pool: Pool; clock: Clock };
type Admin = Extract<Principal, { kind: 'admin' }>;

/**
 * Admin-approved updates (issue 13): an admin names the published release one agent installs.
 * The wanted version rides on the agent's heartbeat answers (update-policy-service.ts) until the agent reports running it;
 * the agent's updater installs it only through its TUF-verified path, never below what it ran.
 */
export function createAgentUpdateService(deps: AgentUpdateServiceDeps) {
  return {
    async requestUpdate(admin: Admin, agentId: string, version: string): Promise<AgentView> {
      return withTransaction(deps.pool, async (tx) => {
        const agent = await getAgentWithLicense(tx, agentId, { lock: true });
        if (!agent) throw new AppError('NOT_FOUND', 'No such agent.');
        if (agent.status === 'deregistered')
          throw new AppError('CONFLICT', 'The agent is deregistered; it will not update again.');
        await requireOfferedRelease(tx, version);
        if (agent.agent_version && compareReleaseVersions(version, agent.agent_version) <= 0)
          throw new AppError(
            'CONFLICT',
            compareReleaseVersions(version, agent.agent_version) === 0
              ? `The agent already runs ${version}.`
              : `The agent runs ${agent.agent_version}; ${version} would be a downgrade, which agents never install.`,
          );
        await setWantedVersion(tx, agentId, version);
        await appendAudit(
          tx,
          {
            actor: { kind: 'admin', id: admin.id },
            action: 'agent.update_requested',
            subject: { kind: 'agent', id: agentId },
            data: {
              licenseId: agent.license_id,
              version,
              runningVersion: agent.agent_version,
              previouslyWanted: agent.wanted_version,
            },
          },
          deps.clock,
        );
        return agentView({ ...agent, wanted_version: version });
      });
    },
  };
}

export type AgentUpdateService = ReturnType<typeof createAgentUpdateService>;
