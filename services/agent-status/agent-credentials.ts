import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Pool } from 'pg';
import { sha256Hex } from '../secrets';
import { findAgentsByCredentialHashes } from '../../db/agents-repo';
import { createBatchLoader } from './batch-loader';
import type { StatusListener } from './status-listener';

const AGENT_CREDENTIAL = /^agc_[A-Za-z0-9_-]{22,64}$/;
/** Age after which a reused credential lookup is refreshed (it is dropped at once on a notice for its agent). */
export const CREDENTIAL_REUSE_MS = 30_000;
const CACHE_MAX = 200_000;

export type AgentIdentity = {
  id: string;
  licenseId: string;
  customerId: string;
  credentialHash: string;
  /** The Ed25519 key registered at activation, which proves each request (null: unusable). */
  publicKey: KeyObject | null;
};
type AgentIdentityRow = AgentIdentity;

function publicKeyOf(pem: string): KeyObject | null {
  try {
    const key = createPublicKey(pem);
    return key.asymmetricKeyType === 'ed25519' ? key : null;
  } catch {
    return null;
  }
}

/**
 * An agent credential (`agc_…`) → the agent it belongs to. Only the sha256 is looked up, so the
 * comparison never touches the secret itself. A deregistered agent's credential is dead.
 *
 * With the process's status listener, a found credential is remembered (by hash) until a notice
 * concerns its agent (deregistration and quarantine NOTIFY), the LISTEN connection drops, or
 * CREDENTIAL_REUSE_MS passes. Unknown credentials are never remembered.
 */
export function createAgentCredentialLookup(deps: { pool: Pool; statusListener?: StatusListener }) {
  const lookup = createBatchLoader<string, AgentIdentityRow>(async (hashes) => {
    const rows = await findAgentsByCredentialHashes(deps.pool, hashes);
    return new Map(
      rows.map((r) => [
        r.credential_hash,
        {
          id: r.id,
          licenseId: r.license_id,
          customerId: r.customer_id,
          credentialHash: r.credential_hash,
          publicKey: publicKeyOf(r.public_key),
        },
      ]),
    );
  });
  const cache = new Map<string, { agent: AgentIdentityRow; mark: number; at: number; refreshing: boolean }>();
  const listener = deps.statusListener;

  async function find(hash: string): Promise<AgentIdentityRow | undefined> {
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

  async function fetchIdentity(hash: string): Promise<AgentIdentityRow | undefined> {
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

  /** The agent a well-formed credential belongs to, or undefined (unknown or deregistered). */
  return async (credential: string): Promise<AgentIdentity | undefined> => {
    if (!AGENT_CREDENTIAL.test(credential)) return undefined;
    return find(sha256Hex(credential));
  };
}

export type AgentCredentialLookup = ReturnType<typeof createAgentCredentialLookup>;
