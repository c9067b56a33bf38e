import { createHash, createHmac, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import {
  formatSession,
  parseProof,
  proofMessage,
  PROOF_WINDOW_MS,
  SESSION_TTL_MS,
  type Clock,
  type SecretKey,
} from '../../protocol';

/** What a proof is checked against: the agent found by its credential. */
export type ProofSubject = { id: string; credentialHash: string; publicKey: KeyObject | null };
export type ProofRequest = { method: string; path: string; body: string; header: unknown };
export type ProofVerdict = { ok: true; kind: 'ed25519' | 'hmac' } | { ok: false; reason: string };

/** The `agent-sessions` secrets are re-read this often (a rotation applies within it). */
const SECRETS_REUSE_MS = 60_000;
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

/**
 * Checks the proof of possession on an agent request (see protocol/agent-proof.ts) and mints the
 * sessions that let an agent prove later requests with an HMAC. A session key is derived, never
 * stored: HMAC(agent-sessions secret, agent id, credential hash, expiry), so any API process with
 * the same keys directory verifies it, and it dies with the credential. Without an
 * `agent-sessions` secret no session is minted and every request needs an Ed25519 proof.
 */
export function createAgentProofVerifier(deps: { secrets: () => SecretKey[]; clock: Clock }) {
  let cached: { at: number; keys: SecretKey[] } | null = null;
  function secrets(): SecretKey[] {
    const t = performance.now();
    if (cached && t - cached.at < SECRETS_REUSE_MS) return cached.keys;
    let keys: SecretKey[] = [];
    try {
      keys = deps.secrets();
    } catch {
      keys = [];
    }
    cached = { at: t, keys };
    return keys;
  }

  const sessionKey = (secret: Buffer, agent: ProofSubject, expiresAt: number) =>
    createHmac('sha256', secret)
      .update(`agentina-agent-session/v1\n${agent.id}\n${agent.credentialHash}\n${expiresAt}`)
      .digest();

  return {
    verify(agent: ProofSubject, req: ProofRequest): ProofVerdict {
      const proof = parseProof(req.header);
      if (!proof) return { ok: false, reason: 'no well-formed proof header' };
      const now = deps.clock.now().getTime();
      if (Math.abs(now - proof.t) > PROOF_WINDOW_MS)
        return { ok: false, reason: 'the proof is out of its time window' };
      const bodySha256 = req.body ? createHash('sha256').update(req.body).digest('hex') : EMPTY_SHA256;
      const message = proofMessage({ method: req.method, path: req.path, bodySha256, t: proof.t });
      if (proof.kind === 'ed25519') {
        if (!agent.publicKey) return { ok: false, reason: 'the agent has no usable registered key' };
        const ok = verify(null, Buffer.from(message), agent.publicKey, Buffer.from(proof.sig, 'base64url'));
        return ok ? { ok: true, kind: 'ed25519' } : { ok: false, reason: 'the signature does not verify' };
      }
      if (proof.session <= now || proof.session > now + SESSION_TTL_MS)
        return { ok: false, reason: 'the session has ended' };
      const mac = Buffer.from(proof.mac, 'base64url');
      for (const s of secrets()) {
        const expected = createHmac('sha256', sessionKey(s.secret, agent, proof.session))
          .update(message)
          .digest();
        if (expected.length === mac.length && timingSafeEqual(expected, mac)) return { ok: true, kind: 'hmac' };
      }
      return { ok: false, reason: 'the session proof does not verify' };
    },

    /** A new session for an agent that just proved itself with its key, or null (no secret). */
    mintSession(agent: ProofSubject): string | null {
      const current = secrets().at(-1);
      if (!current) return null;
      const expiresAt = deps.clock.now().getTime() + SESSION_TTL_MS;
      return formatSession({ expiresAt, key: sessionKey(current.secret, agent, expiresAt).toString('base64url') });
    },
  };
}

export type AgentProofVerifier = ReturnType<typeof createAgentProofVerifier>;
