import type { FingerprintHashes } from '../protocol';
import type { Queryable, Tx } from './pool';

export async function isCustomerActive(db: Queryable, customerId: string): Promise<boolean> {
  const { rows } = await db.query<{ active: boolean }>('SELECT active FROM customers WHERE id = $1', [customerId]);
  return rows[0]?.active === true;
}

/** Agents that occupy a seat on the license (everything but deregistered ones). */
export async function countSeatedAgents(tx: Queryable, licenseId: string): Promise<number> {
  const { rows } = await tx.query<{ n: string }>(
    `SELECT count(*) AS n FROM agents WHERE license_id = $1 AND status <> 'deregistered'`,
    [licenseId],
  );
  return Number(rows[0]!.n);
}

export type NewAgent = {
  id: string;
  licenseId: string;
  customerId: string;
  credentialHash: string;
  publicKey: string;
  fingerprintSalt: string;
  fingerprint: FingerprintHashes;
  fingerprintCommitment: string;
  agentVersion: string;
  hostnameHint?: string | undefined;
  at: Date;
};

export async function insertAgent(tx: Tx, a: NewAgent): Promise<void> {
  await tx.query(
    `INSERT INTO agents (id, license_id, customer_id, credential_hash, public_key, fingerprint_salt, fingerprint,
                         fingerprint_commitment, fingerprint_score, agent_version, hostname_hint, last_seen_at, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 100, $9, $10, $11, $11, $11)`,
    [
      a.id,
      a.licenseId,
      a.customerId,
      a.credentialHash,
      a.publicKey,
      a.fingerprintSalt,
      a.fingerprint,
      a.fingerprintCommitment,
      a.agentVersion,
      a.hostnameHint ?? null,
      a.at,
    ],
  );
}

/** Everything a signed status answer is made of, for one agent. */
export type AgentStatusRow = {
  agent_id: string;
  license_id: string;
  customer_id: string;
  license_state: string;
  license_version: number;
  license_reason: string | null;
  expires_at: Date;
  trial_ends_at: Date | null;
  grace_days: number;
  trial_end_state: 'expired' | 'grace';
  agent_status: string;
  status_version: number;
  agent_reason: string | null;
};

/** Status rows for many agents in one round trip (the status service batches concurrent reads). */
export async function readAgentStatuses(db: Queryable, agentIds: readonly string[]): Promise<AgentStatusRow[]> {
  const { rows } = await db.query<AgentStatusRow & { license_version: string; status_version: string }>(
    `SELECT a.id AS agent_id, a.license_id, a.customer_id, l.state AS license_state, l.version AS license_version,
            l.state_reason AS license_reason,
            l.expires_at, l.trial_ends_at, l.grace_days, l.trial_end_state,
            a.status AS agent_status,
            a.status_version, a.status_reason AS agent_reason
       FROM agents a JOIN licenses l ON l.id = a.license_id
      WHERE a.id = ANY($1::text[])`,
    [agentIds],
  );
  return rows.map((r) => ({
    ...r,
    license_version: Number(r.license_version),
    status_version: Number(r.status_version),
  }));
}

/** The fingerprint commitment an agent was activated with: what a re-issued license document is bound to. */
/** The activation fingerprint commitments of these agents (fixed at activation), by agent id. */
export async function readFingerprintCommitments(
  db: Queryable,
  agentIds: readonly string[],
): Promise<Map<string, string>> {
  const { rows } = await db.query<{ id: string; fingerprint_commitment: string }>(
    'SELECT id, fingerprint_commitment FROM agents WHERE id = ANY($1::text[])',
    [agentIds],
  );
  return new Map(rows.map((r) => [r.id, r.fingerprint_commitment]));
}

export type AgentReconcileRow = {
  id: string;
  license_id: string;
  customer_id: string;
  status: string;
  status_reason: string | null;
  updated_at: Date;
};

/** Agents in id order after `afterId` (reconcile pages through every agent that is not deregistered). */
export async function listAgentsForReconcile(
  db: Queryable,
  afterId: string | null,
  limit: number,
): Promise<AgentReconcileRow[]> {
  const { rows } = await db.query<AgentReconcileRow>(
    `SELECT id, license_id, customer_id, status, status_reason, updated_at FROM agents
      WHERE status <> 'deregistered' AND ($1::text IS NULL OR id > $1)
      ORDER BY id LIMIT $2`,
    [afterId, limit],
  );
  return rows;
}

/** The agents among `ids` that are quarantined now. */
export async function quarantinedAmong(db: Queryable, ids: readonly string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM agents WHERE id = ANY($1::text[]) AND status = 'quarantined'`,
    [ids],
  );
  return new Set(rows.map((r) => r.id));
}
