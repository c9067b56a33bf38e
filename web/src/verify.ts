import nacl from 'tweetnacl';
import { canonicalJson } from '../../protocol/canonical-json';
import type { PublicKeySets, SignedLicense } from './types';

/**
 * Checks a signed license document in the browser with tweetnacl, against the public key set the
 * API publishes, so the answer does not rest on the server's word. The bytes signed are
 * protocol/canonical-json.ts's, the same module the server signs with.
 */
/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

function base64Bytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function rawEd25519Key(pem: string): Uint8Array {
  const der = base64Bytes(pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, '').replace(/\s+/g, ''));
  if (der.length !== 44 || ED25519_SPKI_PREFIX.some((b, i) => der[i] !== b))
    throw new Error('not an Ed25519 public key');
  return der.slice(12);
}

export type SignatureCheck = { ok: true; kid: string } | { ok: false; kid: string; reason: string };

export function checkLicenseSignature(signed: SignedLicense, keys: PublicKeySets): SignatureCheck {
  const { kid, alg, sig } = signed.signature;
  if (alg !== 'Ed25519') return { ok: false, kid, reason: `unsupported algorithm ${alg}` };
  const key = keys.license.keys.find((k) => k.kid === kid);
  if (!key) return { ok: false, kid, reason: `key ${kid} is not in the license key set` };
  try {
    const signature = base64Bytes(sig);
    if (signature.length !== nacl.sign.signatureLength) return { ok: false, kid, reason: 'malformed signature' };
    const message = new TextEncoder().encode(canonicalJson(signed.document));
    return nacl.sign.detached.verify(message, signature, rawEd25519Key(key.publicKeyPem))
      ? { ok: true, kid }
      : { ok: false, kid, reason: 'the signature does not match the document' };
  } catch (err) {
    return { ok: false, kid, reason: err instanceof Error ? err.message : 'could not check' };
  }
}
