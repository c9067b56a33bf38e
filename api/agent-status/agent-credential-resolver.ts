import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { findAgentsByCredentialHashes } from '../../db/agents-repo';
import type { Principal } from '../auth/access';
import type { CredentialResolver } from '../auth/authenticate';
import { createBatchLoader } from './batch-loader';

const BEARER = /^Bearer\s+(\S+)$/i;
const AGENT_CREDENTIAL = /^agc_[A-Za-z0-9_-]{22,64}$/;

export function hashAgentCredential(credential: string): string {
  return createHash('sha256').update(credential, 'utf8').digest('hex');
}

/**
 * `Authorization: Bearer agc_…` → the agent principal. Only the sha256 is looked up, so the
 * comparison never touches the secret itself. Other bearer tokens are not ours: undefined.
 * A deregistered agent's credential is dead (null).
 */
export function createAgentCredentialResolver(deps: { pool: Pool }): CredentialResolver {
  const lookup = createBatchLoader<string, { id: string; license_id: string; customer_id: string }>(async (hashes) => {
    const rows = await findAgentsByCredentialHashes(deps.pool, hashes);
    return new Map(rows.map((r) => [r.credential_hash, r]));
  });
  return async (req) => {
    const header = req.headers.authorization;
    if (typeof header !== 'string' || header.length > 200) return undefined;
    const m = BEARER.exec(header);
    if (!m || !m[1]!.startsWith('agc_')) return undefined;
    if (!AGENT_CREDENTIAL.test(m[1]!)) return null;
    const row = await lookup(hashAgentCredential(m[1]!));
    if (!row) return null;
    const principal: Principal = { kind: 'agent', id: row.id, licenseId: row.license_id, customerId: row.customer_id };
    return principal;
  };
}
