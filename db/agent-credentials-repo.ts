import type { Queryable, Tx } from './pool';

/** Which of an agent's stored credential hashes a presented credential matched. */
export type CredentialRole = 'current' | 'next' | 'previous';

export type CredentialMatchRow = {
  hash: string;
  role: CredentialRole;
  id: string;
  license_id: string;
  customer_id: string;
  public_key: string;
  credential_generation: string;
  credential_superseded_at: Date | null;
};

/**
 * The agents (not deregistered) whose current, next or previous credential hash is among `hashes`,
 * with the role each hash plays. One round trip for many concurrent requests.
 */
export async function findAgentsByCredentialHashes(
  db: Queryable,
  hashes: readonly string[],
): Promise<CredentialMatchRow[]> {
  const { rows } = await db.query<CredentialMatchRow>(
    `WITH h AS (SELECT unnest($1::text[]) AS hash),
          m AS (SELECT h.hash, 'current' AS role, a.* FROM h JOIN agents a ON a.credential_hash = h.hash
                UNION ALL
                SELECT h.hash, 'next', a.* FROM h JOIN agent_pending_credentials p ON p.credential_hash = h.hash
                  JOIN agents a ON a.id = p.agent_id
                UNION ALL
                SELECT h.hash, 'previous', a.* FROM h JOIN agents a ON a.previous_credential_hash = h.hash)
     SELECT hash, role, id, license_id, customer_id, public_key, credential_generation, credential_superseded_at
       FROM m WHERE status <> 'deregistered'`,
    [hashes],
  );
  return rows;
}

/** What a credential that names its agent is checked against (the agent's key and generation). */
export type DescribedAgentRow = {
  id: string;
  license_id: string;
  customer_id: string;
  public_key: string;
  credential_generation: string;
};

export async function findAgentForCredential(db: Queryable, agentId: string): Promise<DescribedAgentRow | undefined> {
  const { rows } = await db.query<DescribedAgentRow>(
    `SELECT id, license_id, customer_id, public_key, credential_generation FROM agents
      WHERE id = $1 AND status <> 'deregistered'`,
    [agentId],
  );
  return rows[0];
}

/**
 * The first use of an issued next generation (the agent row locked by the caller): it becomes
 * current, the current one becomes previous, any older hash and every other issued sibling are
 * forgotten. False when it is not (or no longer) an issued generation of this agent.
 */
export async function promoteNextCredential(
  tx: Tx,
  p: { agentId: string; hash: string; ip: string; at: Date },
): Promise<boolean> {
  const { rowCount } = await tx.query(
    'SELECT 1 FROM agent_pending_credentials WHERE credential_hash = $1 AND agent_id = $2',
    [p.hash, p.agentId],
  );
  if (rowCount !== 1) return false;
  await tx.query('DELETE FROM agent_pending_credentials WHERE agent_id = $1', [p.agentId]);
  await tx.query(
    `UPDATE agents SET previous_credential_hash = credential_hash, credential_hash = $2,
            credential_generation = credential_generation + 1, credential_superseded_at = $3, credential_used_ip = $4
      WHERE id = $1`,
    [p.agentId, p.hash, p.at, p.ip.slice(0, 64)],
  );
  return true;
}

export type CredentialState = {
  credential_hash: string;
  credential_generation: string;
  credential_used_ip: string | null;
};

/** The agent's credential columns, the row locked. */
export async function lockCredentialState(tx: Tx, agentId: string): Promise<CredentialState | undefined> {
  const { rows } = await tx.query<CredentialState>(
    `SELECT credential_hash, credential_generation, credential_used_ip FROM agents
      WHERE id = $1 AND status <> 'deregistered' FOR UPDATE`,
    [agentId],
  );
  return rows[0];
}

/** Issued next generations kept per agent (a lost answer each); the oldest go first. */
export const PENDING_CREDENTIALS_KEPT = 8;

/** Records an issued next generation (its hash) and who used the current one. */
export async function addPendingCredential(
  tx: Tx,
  p: { agentId: string; hash: string; ip: string; at: Date },
): Promise<void> {
  await tx.query('INSERT INTO agent_pending_credentials (credential_hash, agent_id, issued_at) VALUES ($1, $2, $3)', [
    p.hash,
    p.agentId,
    p.at,
  ]);
  await tx.query(
    `DELETE FROM agent_pending_credentials WHERE agent_id = $1 AND credential_hash NOT IN
       (SELECT credential_hash FROM agent_pending_credentials WHERE agent_id = $1 ORDER BY issued_at DESC LIMIT $2)`,
    [p.agentId, PENDING_CREDENTIALS_KEPT],
  );
  await recordCredentialUse(tx, p.agentId, p.ip);
}

/** The current generation's last user. */
export async function recordCredentialUse(tx: Tx, agentId: string, ip: string): Promise<void> {
  await tx.query('UPDATE agents SET credential_used_ip = $2 WHERE id = $1', [agentId, ip.slice(0, 64)]);
}

/** Whether `hash` is the agent's current credential hash. */
export async function isCurrentCredential(db: Queryable, agentId: string, hash: string): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>('SELECT credential_hash = $2 AS ok FROM agents WHERE id = $1', [
    agentId,
    hash,
  ]);
  return rows[0]?.ok === true;
}
