import type { AgentCredentialLookup } from '../../services/agent-status/agent-credentials';
import { rememberProofSubject } from './agent-proof';
import type { CredentialResolver } from './authenticate';

const BEARER = /^Bearer\s+(\S+)$/i;

/**
 * `Authorization: Bearer agc_…` → the agent principal. Other bearer tokens are not ours:
 * undefined lets the next resolver look at them; a malformed, unknown or dead credential is null.
 */
export function createAgentCredentialResolver(lookup: AgentCredentialLookup): CredentialResolver {
  return async (req) => {
    const header = req.headers.authorization;
    if (typeof header !== 'string' || header.length > 200) return undefined;
    const credential = BEARER.exec(header)?.[1];
    if (!credential?.startsWith('agc_')) return undefined;
    const agent = await lookup(credential);
    if (!agent) return null;
    // The request must still prove possession of the agent's key (api/auth/agent-proof.ts).
    rememberProofSubject(req, agent);
    return { kind: 'agent', id: agent.id, licenseId: agent.licenseId, customerId: agent.customerId };
  };
}
