/**
 * Proof of possession for agent requests: the `agc_…` credential names the agent, and every
 * request also proves it holds the Ed25519 key registered at activation. The proof covers the
 * method, the path with its query, the SHA-256 of the body and a timestamp, so a credential (or a
 * proof) taken from one request is of no use for another, or later than PROOF_WINDOW_MS.
 *
 *   agentina-proof: ed25519 t=<unix ms>,sig=<base64url Ed25519 signature of proofMessage>
 *   agentina-proof: hmac t=<unix ms>,s=<session expiry, unix ms>,mac=<base64url HMAC-SHA256>
 *
 * An Ed25519-proved request is answered with a session (`agentina-session: s=<expiry>,key=<…>`),
 * a key the control plane derives from its `agent-sessions` secret, the agent and its credential;
 * until the expiry the agent may prove requests with an HMAC under that key instead, which costs
 * the control plane a microsecond instead of an Ed25519 verification. The session key is never
 * written to disk, so a copy of the agent's files alone cannot produce it.
 *
 * This file only builds and parses the strings (no crypto, so the browser can import protocol/).
 */
export const PROOF_HEADER = 'agentina-proof';
export const SESSION_HEADER = 'agentina-session';
/** Sent with a refused proof: the control plane's clock (unix ms), so a skewed agent can correct. */
export const SERVER_TIME_HEADER = 'agentina-time';
/** A proof's timestamp may be this far from the control plane's clock, either way. */
export const PROOF_WINDOW_MS = 120_000;
/** How long a session lasts; the agent takes a new one before it ends. */
export const SESSION_TTL_MS = 15 * 60_000;

export function proofMessage(p: { method: string; path: string; bodySha256: string; t: number }): string {
  return `agentina-proof/v1\n${p.method.toUpperCase()}\n${p.path}\n${p.bodySha256}\n${p.t}`;
}

export type ParsedProof =
  { kind: 'ed25519'; t: number; sig: string } | { kind: 'hmac'; t: number; session: number; mac: string };

const ED25519_PROOF = /^ed25519 t=(\d{13}),sig=([A-Za-z0-9_-]{86})$/;
const HMAC_PROOF = /^hmac t=(\d{13}),s=(\d{13}),mac=([A-Za-z0-9_-]{43})$/;

export function parseProof(header: unknown): ParsedProof | null {
  if (typeof header !== 'string' || header.length > 200) return null;
  const e = ED25519_PROOF.exec(header);
  if (e) return { kind: 'ed25519', t: Number(e[1]), sig: e[2]! };
  const h = HMAC_PROOF.exec(header);
  if (h) return { kind: 'hmac', t: Number(h[1]), session: Number(h[2]), mac: h[3]! };
  return null;
}

export const formatEd25519Proof = (t: number, sig: string) => `ed25519 t=${t},sig=${sig}`;
export const formatHmacProof = (t: number, session: number, mac: string) => `hmac t=${t},s=${session},mac=${mac}`;

export type AgentSession = { expiresAt: number; key: string };
const SESSION = /^s=(\d{13}),key=([A-Za-z0-9_-]{43})$/;
export const formatSession = (s: AgentSession) => `s=${s.expiresAt},key=${s.key}`;
export function parseSession(header: unknown): AgentSession | null {
  if (typeof header !== 'string') return null;
  const m = SESSION.exec(header);
  return m ? { expiresAt: Number(m[1]), key: m[2]! } : null;
}
