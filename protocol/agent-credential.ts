/**
 * Agent credentials that say which agent and which generation they are (credential rotation and
 * clone detection). The control plane stores only the sha256 of the current generation and of the
 * next one it issued, so an older generation cannot be matched by hash any more; its string still
 * names the agent and the generation, and a request that presents it while proving possession of
 * that agent's key comes from a copy of the agent's state: a clone.
 *
 *   agc_<base64url( 0x01 | generation: uint32 BE | agent id: 16 bytes | secret: 24 bytes )>
 *
 * Credentials issued before rotation existed are 32 random bytes (43 characters) and parse as
 * nothing here: they are generation 0 of an agent found only by their hash.
 */
const VERSION = 1;
const ID_BYTES = 16;
export const CREDENTIAL_SECRET_BYTES = 24;
const TOTAL_BYTES = 1 + 4 + ID_BYTES + CREDENTIAL_SECRET_BYTES;
const AGENT_ID = /^agt_([A-Za-z0-9_-]{22})$/;
/** The highest generation a credential can carry. */
export const MAX_CREDENTIAL_GENERATION = 0xffff_ffff;

/** Whether an agent id can be carried in a credential (ids made by newId('agt') can). */
export function canDescribeAgent(agentId: string): boolean {
  const m = AGENT_ID.exec(agentId);
  return m !== null && Buffer.from(m[1]!, 'base64url').length === ID_BYTES;
}

/** The credential of `generation` for `agentId` with the given secret bytes. */
export function formatAgentCredential(agentId: string, generation: number, secret: Buffer): string {
  const m = AGENT_ID.exec(agentId);
  const id = m ? Buffer.from(m[1]!, 'base64url') : null;
  if (!id || id.length !== ID_BYTES) throw new Error('this agent id cannot be carried in a credential');
  if (!Number.isSafeInteger(generation) || generation < 0 || generation > MAX_CREDENTIAL_GENERATION)
    throw new Error('credential generation out of range');
  if (secret.length !== CREDENTIAL_SECRET_BYTES) throw new Error('a credential secret is 24 bytes');
  const out = Buffer.alloc(TOTAL_BYTES);
  out[0] = VERSION;
  out.writeUInt32BE(generation, 1);
  id.copy(out, 5);
  secret.copy(out, 5 + ID_BYTES);
  return `agc_${out.toString('base64url')}`;
}

/** The agent and generation a credential names, or null (a credential from before rotation, or not one). */
export function parseAgentCredential(credential: string): { agentId: string; generation: number } | null {
  if (!credential.startsWith('agc_') || credential.length !== 4 + Math.ceil((TOTAL_BYTES * 4) / 3)) return null;
  const body = credential.slice(4);
  if (!/^[A-Za-z0-9_-]+$/.test(body)) return null;
  const raw = Buffer.from(body, 'base64url');
  if (raw.length !== TOTAL_BYTES || raw[0] !== VERSION) return null;
  return {
    agentId: `agt_${raw.subarray(5, 5 + ID_BYTES).toString('base64url')}`,
    generation: raw.readUInt32BE(1),
  };
}
