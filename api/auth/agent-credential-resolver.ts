import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { findAgentsByCredentialHashes } from '../../db/agents-repo';
import type { Principal } from './access';
import type { CredentialResolver } from './authenticate';
import { createBatchLoader } from '../../services/agent-status/batch-loader';
import type { StatusListener } from '../../services/agent-status/status-listener';

const BEARER = /^Bearer\s+(\S+)$/i;
const AGENT_CREDENTIAL = /^agc_[A-Za-z0-9_-]{22,64}$/;
/** Age after which a reused credential lookup is refreshed (it is dropped at once on a notice for its agent). */
export const CREDENTIAL_REUSE_MS = 30_000;
const CACHE_MAX = 200_000;

export function hashAgentCredential(credential: string): string {
  return createHash('sha256').update(credential, 'utf8').digest('hex');
}

type AgentIdentity = { id: string; license_id: string; customer_id: string };

/**
 * `Authorization: Bearer agc_…` → the agent principal. Only the sha256 is looked up, so the
 * comparison never touches the secret itself. Other bearer tokens are not ours: undefined.
 * A deregistered agent's credential is dead (null).
 *
 * With the process's status listener, a found credential is remembered (by hash) until a notice
 * concerns its agent (deregistration and quarantine NOTIFY), the LISTEN connection drops, or
 * CREDENTIAL_REUSE_MS passes. Unknown credentials are never remembered.
 */
export function createAgentCredentialResolver(deps: {
  pool: Pool;
  statusListener?: StatusListener;
}): CredentialResolver {
  const lookup = createBatchLoader<string, AgentIdentity>(async (hashes) => {
    const rows = await findAgentsByCredentialHashes(deps.pool, hashes);
    return new Map(rows.map((r) => [r.credential_hash, r]));
  });
  const cache = new Map<string, { agent: AgentIdentity; mark: number; at: number; refreshing: boolean }>();
  const listener = deps.statusListener;

  async function find(hash: string): Promise<AgentIdentity | undefined> {
    if (!listener) return lookup(hash);
    const hit = cache.get(hash);
    if (hit && !listener.changedSince([hit.agent.id], hit.mark)) {
      // Past its age limit an entry is served once more while it is looked up again in the background.
      if (performance.now() - hit.at >= CREDENTIAL_REUSE_MS && !hit.refreshing) {
        hit.refreshing = true;
        fetchIdentity(hash).catch(() => cache.delete(hash));
      }
      return hit.agent;
    }
    return fetchIdentity(hash);
  }

  async function fetchIdentity(hash: string): Promise<AgentIdentity | undefined> {
    const mark = listener!.mark();
    const at = performance.now();
    const agent = await lookup(hash);
    if (agent && !listener!.changedSince([agent.id], mark)) {
      if (cache.size >= CACHE_MAX) cache.clear();
      cache.set(hash, { agent, mark, at, refreshing: false });
    } else {
      cache.delete(hash);
    }
    return agent;
  }

  return async (req) => {
    const header = req.headers.authorization;
    if (typeof header !== 'string' || header.length > 200) return undefined;
    const m = BEARER.exec(header);
    if (!m || !m[1]!.startsWith('agc_')) return undefined;
    if (!AGENT_CREDENTIAL.test(m[1]!)) return null;
    const agent = await find(hashAgentCredential(m[1]!));
    if (!agent) return null;
    const principal: Principal = {
      kind: 'agent',
      id: agent.id,
      licenseId: agent.license_id,
      customerId: agent.customer_id,
    };
    return principal;
  };
}
