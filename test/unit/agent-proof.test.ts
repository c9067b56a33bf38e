import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { createAgentProofVerifier } from '../../services/agent-status/agent-proof';
import {
  createFixedClock,
  formatEd25519Proof,
  parseProof,
  parseSession,
  proofMessage,
  PROOF_WINDOW_MS,
} from '../../protocol';

/**
 * The proof of possession's Ed25519 form is plain Ed25519 over the proof message: a proof made by
 * an independent implementation (tweetnacl) verifies, and one bit changed anywhere does not.
 */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const at = new Date('2026-11-30T12:00:00.000Z');
const clock = createFixedClock(at);
const verifier = createAgentProofVerifier({ secrets: () => [{ kid: 's1', secret: randomBytes(32) }], clock });
const pair = nacl.sign.keyPair();
const subject = {
  id: 'agt_prooftest000000000001',
  credentialHash: 'a'.repeat(64),
  publicKey: createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(pair.publicKey)]),
    format: 'der',
    type: 'spki',
  }),
};
const body = '{"outcome":"succeeded"}';
const path = '/v1/agent/tasks/tsk_0000000000000000/result';

function naclProof(t: number, over: { method?: string; path?: string; body?: string } = {}): string {
  const message = proofMessage({
    method: over.method ?? 'POST',
    path: over.path ?? path,
    bodySha256: createHash('sha256')
      .update(over.body ?? body)
      .digest('hex'),
    t,
  });
  const sig = nacl.sign.detached(Buffer.from(message), pair.secretKey);
  return formatEd25519Proof(t, Buffer.from(sig).toString('base64url'));
}
const check = (header: string, req: { method?: string; path?: string; body?: string } = {}) =>
  verifier.verify(subject, { method: req.method ?? 'POST', path: req.path ?? path, body: req.body ?? body, header });

describe('agent proof of possession', () => {
  it('accepts an Ed25519 proof made by tweetnacl, and answers it with a session', () => {
    expect(check(naclProof(at.getTime()))).toEqual({ ok: true, kind: 'ed25519' });
    const session = parseSession(verifier.mintSession(subject));
    expect(session?.expiresAt).toBeGreaterThan(at.getTime());
  });

  it('refuses it for another method, path, body or time, and outside the window', () => {
    const t = at.getTime();
    const proof = naclProof(t);
    expect(check(proof, { method: 'GET' }).ok).toBe(false);
    expect(check(proof, { path: `${path}?x=1` }).ok).toBe(false);
    expect(check(proof, { body: '{"outcome":"failed"}' }).ok).toBe(false);
    expect(check(proof.replace(`t=${t}`, `t=${t + 1}`)).ok).toBe(false);
    expect(check(naclProof(t - PROOF_WINDOW_MS - 1)).ok).toBe(false);
    expect(check(naclProof(t + PROOF_WINDOW_MS + 1)).ok).toBe(false);
    expect(check(naclProof(t - PROOF_WINDOW_MS)).ok).toBe(true);
  });

  it('parses only the two exact forms', () => {
    const sig = 'A'.repeat(86);
    expect(parseProof(`ed25519 t=${at.getTime()},sig=${sig}`)).toMatchObject({ kind: 'ed25519' });
    for (const bad of [
      undefined,
      '',
      `ed25519 t=${at.getTime()},sig=${sig} `,
      `ED25519 t=${at.getTime()},sig=${sig}`,
      `ed25519 t=1,sig=${sig}`,
      `hmac t=${at.getTime()},s=1,mac=${'A'.repeat(43)}`,
      ['a', 'b'],
      'x'.repeat(10_000),
    ])
      expect(parseProof(bad)).toBeNull();
  });
});
