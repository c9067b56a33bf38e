import type { Pool } from 'pg';
import { getAgentWithLicense } from '../../db/agent-status-repo';
import { appendAudit } from '../../db/audit-repo';
import { getLicense } from '../../db/licenses-repo';
import { withTransaction, type Queryable } from '../../db/pool';
import {
  getAgentUpdatePolicy,
  getLicenseUpdatePolicy,
  setUpdatePolicy,
  type UpdatePolicyLevels,
  type UpdatePolicySetting,
} from '../../db/update-policy-repo';
import {
  compareReleaseVersions,
  isReleaseVersion,
  type Clock,
  type HeartbeatResponse,
  type UpdatePolicyMode,
} from '../../protocol';
import type { UpdatePolicyView } from '../../protocol/views';
import { AppError } from '../errors';
import type { Principal } from '../principal';
import { requireOfferedRelease } from './agent-update-service';

type Admin = Extract<Principal, { kind: 'admin' }>;
export type UpdatePolicyTarget = { kind: 'license' | 'agent'; id: string };
export type EffectiveUpdatePolicy = UpdatePolicyView['effective'];
export type { UpdatePolicyView };

/** The agent's own setting, else its license's, else the policy version's, else automatic. */
export function effectiveUpdatePolicy(l: UpdatePolicyLevels): EffectiveUpdatePolicy {
  if (l.agent) return { ...l.agent, source: 'agent' };
  if (l.license) return { ...l.license, source: 'license' };
  if (l.policyVersion) return { policy: l.policyVersion, pinnedVersion: null, source: 'policy' };
  return { policy: 'automatic', pinnedVersion: null, source: 'default' };
}

/**
 * The heartbeat answer's `update`. An admin-approved wanted version goes first (one request, ended
 * once the agent runs it); a pin is `manual` on the wire with the pinned version wanted while the
 * agent runs below it, and plain `manual` (install nothing) once it runs it or anything above.
 */
export function updateDirective(l: UpdatePolicyLevels): NonNullable<HeartbeatResponse['update']> {
  const eff = effectiveUpdatePolicy(l);
  if (eff.policy !== 'pinned') return { policy: eff.policy, ...(l.wantedVersion ? { wanted: l.wantedVersion } : {}) };
  const pin = eff.pinnedVersion!;
  const below = !l.agentVersion || !isReleaseVersion(l.agentVersion) || compareReleaseVersions(pin, l.agentVersion) > 0;
  const wanted = l.wantedVersion ?? (below ? pin : null);
  return { policy: 'manual', ...(wanted ? { wanted } : {}) };
}

/**
 * Update policy per license or per agent (issue 13), over the policy version's: set by an admin,
 * audited (`license.update_policy_set`, `agent.update_policy_set`), and what every heartbeat answer
 * tells the agent.
 */
export function createUpdatePolicyService(deps: { pool: Pool; clock: Clock }) {
  async function levels(db: Queryable, t: UpdatePolicyTarget) {
    return t.kind === 'agent' ? getAgentUpdatePolicy(db, t.id) : getLicenseUpdatePolicy(db, t.id);
  }
  const view = (t: UpdatePolicyTarget, l: UpdatePolicyLevels): UpdatePolicyView => ({
    kind: t.kind,
    id: t.id,
    own: t.kind === 'agent' ? l.agent : l.license,
    effective: effectiveUpdatePolicy(l),
  });

  return {
    async get(t: UpdatePolicyTarget): Promise<UpdatePolicyView> {
      const l = await levels(deps.pool, t);
      if (!l) throw new AppError('NOT_FOUND', `No such ${t.kind}.`);
      return view(t, l);
    },

    /** `inherit` clears this level's setting; `pinned` needs a published, not yanked release. */
    async set(
      admin: Admin,
      t: UpdatePolicyTarget,
      input: { policy: UpdatePolicyMode | 'inherit'; version?: string | undefined },
    ): Promise<UpdatePolicyView> {
      return withTransaction(deps.pool, async (tx) => {
        let licenseId: string;
        if (t.kind === 'agent') {
          const agent = await getAgentWithLicense(tx, t.id, { lock: true });
          if (!agent) throw new AppError('NOT_FOUND', 'No such agent.');
          if (agent.status === 'deregistered')
            throw new AppError('CONFLICT', 'The agent is deregistered; it will not update again.');
          licenseId = agent.license_id;
        } else {
          const license = await getLicense(tx, t.id, { forUpdate: true });
          if (!license) throw new AppError('NOT_FOUND', 'No such license.');
          licenseId = license.id;
        }
        if (input.policy === 'pinned') await requireOfferedRelease(tx, input.version!);
        const before = (await levels(tx, t))!;
        const value: UpdatePolicySetting =
          input.policy === 'inherit'
            ? null
            : { policy: input.policy, pinnedVersion: input.policy === 'pinned' ? input.version! : null };
        await setUpdatePolicy(tx, t, value);
        const after = (await levels(tx, t))!;
        await appendAudit(
          tx,
          {
            actor: { kind: 'admin', id: admin.id },
            action: t.kind === 'agent' ? 'agent.update_policy_set' : 'license.update_policy_set',
            subject: { kind: t.kind, id: t.id },
            data: {
              licenseId,
              before: view(t, before).own,
              after: value,
              effective: effectiveUpdatePolicy(after),
            },
          },
          deps.clock,
        );
        return view(t, after);
      });
    },

    /** The heartbeat answer's `update` for one agent. */
    async directive(agentId: string): Promise<NonNullable<HeartbeatResponse['update']>> {
      const l = await getAgentUpdatePolicy(deps.pool, agentId);
      return l ? updateDirective(l) : { policy: 'automatic' };
    },
  };
}
export type UpdatePolicyService = ReturnType<typeof createUpdatePolicyService>;
