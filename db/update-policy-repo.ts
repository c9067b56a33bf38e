import type { UpdatePolicy, UpdatePolicyMode } from '../protocol';
import type { Queryable, Tx } from './pool';

/** One level's own setting: null inherits from the level above. */
export type UpdatePolicySetting = { policy: UpdatePolicyMode; pinnedVersion: string | null } | null;

/** Every level an agent's update policy comes from, and what its heartbeat answer needs besides. */
export type UpdatePolicyLevels = {
  agent: UpdatePolicySetting;
  license: UpdatePolicySetting;
  /** The policy version the license was created from (null: none). */
  policyVersion: UpdatePolicy | null;
  wantedVersion: string | null;
  agentVersion: string | null;
};

type Raw = {
  a_policy: UpdatePolicyMode | null;
  a_pin: string | null;
  l_policy: UpdatePolicyMode | null;
  l_pin: string | null;
  p_policy: UpdatePolicy | null;
  wanted_version: string | null;
  agent_version: string | null;
};

const setting = (policy: UpdatePolicyMode | null, pin: string | null): UpdatePolicySetting =>
  policy ? { policy, pinnedVersion: pin } : null;

function toLevels(r: Raw): UpdatePolicyLevels {
  return {
    agent: setting(r.a_policy, r.a_pin),
    license: setting(r.l_policy, r.l_pin),
    policyVersion: r.p_policy,
    wantedVersion: r.wanted_version,
    agentVersion: r.agent_version,
  };
}

const LICENSE_JOIN = `JOIN licenses l ON l.id = a.license_id
  LEFT JOIN policy_versions pv ON pv.policy_id = l.policy_id AND pv.version = l.policy_version`;

/** The levels of one agent (null: no such agent). */
export async function getAgentUpdatePolicy(db: Queryable, agentId: string): Promise<UpdatePolicyLevels | null> {
  const { rows } = await db.query<Raw>(
    `SELECT a.update_policy AS a_policy, a.update_pinned_version AS a_pin, l.update_policy AS l_policy,
            l.update_pinned_version AS l_pin, pv.update_policy AS p_policy, a.wanted_version, a.agent_version
       FROM agents a ${LICENSE_JOIN}
      WHERE a.id = $1`,
    [agentId],
  );
  return rows[0] ? toLevels(rows[0]) : null;
}

/** The levels of one license, for none of its agents in particular (null: no such license). */
export async function getLicenseUpdatePolicy(db: Queryable, licenseId: string): Promise<UpdatePolicyLevels | null> {
  const { rows } = await db.query<Raw>(
    `SELECT NULL AS a_policy, NULL AS a_pin, l.update_policy AS l_policy, l.update_pinned_version AS l_pin,
            pv.update_policy AS p_policy, NULL AS wanted_version, NULL AS agent_version
       FROM licenses l
       LEFT JOIN policy_versions pv ON pv.policy_id = l.policy_id AND pv.version = l.policy_version
      WHERE l.id = $1`,
    [licenseId],
  );
  return rows[0] ? toLevels(rows[0]) : null;
}

/** Sets (or with null clears) the update policy of one license or one agent. */
export async function setUpdatePolicy(
  tx: Tx,
  target: { kind: 'license' | 'agent'; id: string },
  value: UpdatePolicySetting,
): Promise<void> {
  const table = target.kind === 'license' ? 'licenses' : 'agents';
  await tx.query(`UPDATE ${table} SET update_policy = $2, update_pinned_version = $3 WHERE id = $1`, [
    target.id,
    value?.policy ?? null,
    value?.pinnedVersion ?? null,
  ]);
}
