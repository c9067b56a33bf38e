import type { PolicyKind, TrialEndState, UpdatePolicy } from '../protocol';
import type { Queryable, Tx } from './pool';

/** A policy with the terms of its current version. */
export type PolicyRow = {
  id: string;
  name: string;
  version: number;
  archived_at: Date | null;
  created_at: Date;
  updated_at: Date;
  license_count: number;
} & PolicyTermsRow;

/** One immutable version of a policy's terms. */
export type PolicyTermsRow = {
  plan: string;
  kind: PolicyKind;
  duration_days: number;
  grace_days: number;
  trial_end_state: TrialEndState;
  max_agents: number;
  features: Record<string, boolean | number | string>;
  seat_reclaim_days: number;
  update_policy: UpdatePolicy;
};

export type PolicyVersionRow = PolicyTermsRow & {
  policy_id: string;
  version: number;
  name: string;
  created_at: Date;
  created_by_kind: string;
  created_by_id: string;
};

const TERMS = `v.plan, v.kind, v.duration_days, v.grace_days, v.trial_end_state, v.max_agents, v.features,
  v.seat_reclaim_days, v.update_policy`;
const SELECT_POLICY = `SELECT p.id, p.name, p.version, p.archived_at, p.created_at, p.updated_at, ${TERMS},
    (SELECT count(*)::int FROM licenses l WHERE l.policy_id = p.id) AS license_count
   FROM policies p JOIN policy_versions v ON v.policy_id = p.id AND v.version = p.version`;

export type NewPolicyVersion = {
  policyId: string;
  version: number;
  name: string;
  terms: PolicyTermsRow;
  createdBy: { kind: string; id: string };
  now: Date;
};

/** Inserts a policy at version 1 (false when the name is taken by a live policy). */
export async function insertPolicy(tx: Tx, p: NewPolicyVersion): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO policies (id, name, version, created_at, updated_at) VALUES ($1, $2, 1, $3, $3)
     ON CONFLICT DO NOTHING`,
    [p.policyId, p.name, p.now],
  );
  if (!rowCount) return false;
  await insertPolicyVersion(tx, p);
  return true;
}

export async function insertPolicyVersion(tx: Tx, p: NewPolicyVersion): Promise<void> {
  const t = p.terms;
  await tx.query(
    `INSERT INTO policy_versions (policy_id, version, name, plan, kind, duration_days, grace_days, trial_end_state,
       max_agents, features, seat_reclaim_days, update_policy, created_at, created_by_kind, created_by_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
    [
      p.policyId,
      p.version,
      p.name,
      t.plan,
      t.kind,
      t.duration_days,
      t.grace_days,
      t.trial_end_state,
      t.max_agents,
      JSON.stringify(t.features),
      t.seat_reclaim_days,
      t.update_policy,
      p.now,
      p.createdBy.kind,
      p.createdBy.id,
    ],
  );
}

/** Moves a policy to a version written just before (and renames it), in the caller's transaction. */
export async function setPolicyVersion(tx: Tx, id: string, version: number, name: string, now: Date): Promise<void> {
  await tx.query('UPDATE policies SET version = $2, name = $3, updated_at = $4 WHERE id = $1', [
    id,
    version,
    name,
    now,
  ]);
}

export async function archivePolicyRow(tx: Tx, id: string, now: Date): Promise<void> {
  await tx.query('UPDATE policies SET archived_at = $2, updated_at = $2 WHERE id = $1 AND archived_at IS NULL', [
    id,
    now,
  ]);
}

export async function getPolicy(
  db: Queryable,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<PolicyRow | null> {
  // FOR UPDATE OF p: the version rows are never changed, only the policy row is locked.
  const { rows } = await db.query<PolicyRow>(
    `${SELECT_POLICY} WHERE p.id = $1${opts.forUpdate ? ' FOR UPDATE OF p' : ''}`,
    [id],
  );
  return rows[0] ?? null;
}

/** Live policies by name; archived ones too when asked. At most `limit`. */
export async function listPolicies(db: Queryable, f: { archived: boolean; limit: number }): Promise<PolicyRow[]> {
  const { rows } = await db.query<PolicyRow>(
    `${SELECT_POLICY} WHERE ($1::boolean OR p.archived_at IS NULL) ORDER BY lower(p.name), p.id LIMIT $2`,
    [f.archived, f.limit],
  );
  return rows;
}

export async function listPolicyVersions(db: Queryable, id: string): Promise<PolicyVersionRow[]> {
  const { rows } = await db.query<PolicyVersionRow>(
    `SELECT v.policy_id, v.version, v.name, ${TERMS}, v.created_at, v.created_by_kind, v.created_by_id
       FROM policy_versions v WHERE v.policy_id = $1 ORDER BY v.version DESC`,
    [id],
  );
  return rows;
}

/** Ids of the licenses that record this policy and are not revoked, oldest first. */
export async function listLicenseIdsOfPolicy(db: Queryable, policyId: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM licenses WHERE policy_id = $1 AND state <> 'revoked' ORDER BY created_at, id`,
    [policyId],
  );
  return rows.map((r) => r.id);
}
