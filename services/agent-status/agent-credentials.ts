import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Pool } from 'pg';
import { sha256Hex } from '../secrets';
import {
  findAgentForCredential,
  findAgentsByCredentialHashes,
  type CredentialRole,
} from '../../db/agent-credentials-repo';
import { parseAgentCredential } from '../../protocol';
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
  /** Which generation of the agent's credential was presented (services/agents/credential-rotation.ts). */
  generation: PresentedGeneration;
};
/**
 * `current`, `next` (issued, first use now) and `previous` (superseded by the current one) matched
 * their stored hash; `superseded` is an older generation, or a sibling of the current one issued
 * to another machine, known only by what its string names.
 */
export type PresentedGeneration = {
  role: CredentialRole | 'superseded';
  presented: number;
  current: number;
  supersededAt: Date | null;
};
type AgentIdentityRow = AgentIdentity;
const OFFSET: Record<CredentialRole, number> = { current: 0, next: 1, previous: -1 };

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
        r.hash,
        {
          id: r.id,
          licenseId: r.license_id,
          customerId: r.customer_id,
          credentialHash: r.hash,
          publicKey: publicKeyOf(r.public_key),
          generation: {
            role: r.role,
            presented: Number(r.credential_generation) + OFFSET[r.role],
            current: Number(r.credential_generation),
            supersededAt: r.credential_superseded_at,
          },
        },
      ]),
    );
  });
  const cache = new Map<string, { agent: AgentIdentityRow; mark: number; at: number; refreshing: boolean }>();
  // When each agent's credential last moved to a new generation in this process: older entries are stale.
  const rotatedAt = new Map<string, number>();
  const listener = deps.statusListener;

  async function find(hash: string): Promise<AgentIdentityRow | undefined> {
    if (!listener) return lookup(hash);
    const hit = cache.get(hash);
    if (hit && !listener.changedSince([hit.agent.id], hit.mark) && (rotatedAt.get(hit.agent.id) ?? -1) < hit.at) {
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
    // Only a current generation is remembered: a next or previous one changes role within seconds.
    if (agent?.generation.role === 'current' && !listener!.changedSince([agent.id], mark)) {
      if (cache.size >= CACHE_MAX) {
        cache.clear();
        rotatedAt.clear();
      }
      cache.set(hash, { agent, mark, at, refreshing: false });
    } else {
      cache.delete(hash);
    }
    return agent;
  }

  /**
   * A generation no stored hash matches: the string names its agent and generation. It is
   * returned as `superseded` only when that generation is not above the agent's current one; whoever
   * presents it must still prove possession of the agent's key before anything is concluded.
   */
  async function findSuperseded(credential: string, hash: string): Promise<AgentIdentityRow | undefined> {
    const named = parseAgentCredential(credential);
    if (!named) return undefined;
    const row = await findAgentForCredential(deps.pool, named.agentId);
    // The current generation's number with another hash: a sibling issued to a second machine and
    // left behind when the first used its own. Higher numbers are not ours to judge: unknown.
    if (!row || named.generation > Number(row.credential_generation)) return undefined;
    return {
      id: row.id,
      licenseId: row.license_id,
      customerId: row.customer_id,
      credentialHash: hash,
      publicKey: publicKeyOf(row.public_key),
      generation: {
        role: 'superseded',
        presented: named.generation,
        current: Number(row.credential_generation),
        supersededAt: null,
      },
    };
  }

  /** The agent a well-formed credential belongs to, or undefined (unknown or deregistered). */
  const resolve = async (credential: string): Promise<AgentIdentity | undefined> => {
    if (!AGENT_CREDENTIAL.test(credential)) return undefined;
    const hash = sha256Hex(credential);
    return (await find(hash)) ?? findSuperseded(credential, hash);
  };
  return Object.assign(resolve, {
    /**
     * The agent's credential moved to a new generation: what this process remembers of it is
     * looked up again. (Another API process may serve the superseded one for up to
     * CREDENTIAL_REUSE_MS to requests that do not rotate; the heartbeat always decides against
     * the database.)
     */
    forgetAgent(agentId: string): void {
      rotatedAt.set(agentId, performance.now());
    },
  });
}

export type AgentCredentialLookup = ReturnType<typeof createAgentCredentialLookup>;
