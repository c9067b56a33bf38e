import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalBytes } from './canonical-json';

/**
 * Ed25519 over canonical JSON with key ids, through node:crypto (native, ~20k signs/s).
 * A signature names its key id; verification takes a key set, so keys can rotate.
 */
export type Signature = { alg: 'Ed25519'; kid: string; sig: string };
export type SignedEnvelope<T> = { payload: T; signature: Signature };

export type Signer = { kid: string; publicKeyPem: string; sign(value: unknown): Signature };
export type VerifyResult = { ok: true } | { ok: false; code: 'UNKNOWN_KEY' | 'BAD_SIGNATURE' | 'MALFORMED' };

const KID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export type KeyFile = { kid: string; alg: 'Ed25519'; privateKeyPem: string; publicKeyPem: string; createdAt: string };

export function generateKeyFile(kid: string, now = new Date()): KeyFile {
  if (!KID_PATTERN.test(kid)) throw new Error('key id must be 1-64 characters of [A-Za-z0-9._-]');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    kid,
    alg: 'Ed25519',
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    createdAt: now.toISOString(),
  };
}

export function createSigner(keyFile: Pick<KeyFile, 'kid' | 'privateKeyPem'>): Signer {
  if (!KID_PATTERN.test(keyFile.kid)) throw new Error('key file has an invalid key id');
  const privateKey = createPrivateKey(keyFile.privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('key file does not hold an Ed25519 private key');
  const publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  return {
    kid: keyFile.kid,
    publicKeyPem,
    sign(value: unknown): Signature {
      return {
        alg: 'Ed25519',
        kid: keyFile.kid,
        sig: sign(null, canonicalBytes(value), privateKey).toString('base64'),
      };
    },
  };
}

/** Public keys by key id. */
export type KeySet = ReadonlyMap<string, KeyObject>;

export function createKeySet(keys: Array<{ kid: string; publicKeyPem: string }>): KeySet {
  const set = new Map<string, KeyObject>();
  for (const k of keys) {
    const key = createPublicKey(k.publicKeyPem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`key ${k.kid} is not an Ed25519 public key`);
    set.set(k.kid, key);
  }
  return set;
}

export function verifySignature(value: unknown, signature: Signature, keys: KeySet): VerifyResult {
  if (
    !signature ||
    signature.alg !== 'Ed25519' ||
    typeof signature.sig !== 'string' ||
    typeof signature.kid !== 'string'
  ) {
    return { ok: false, code: 'MALFORMED' };
  }
  const key = keys.get(signature.kid);
  if (!key) return { ok: false, code: 'UNKNOWN_KEY' };
  const sig = Buffer.from(signature.sig, 'base64');
  if (sig.length !== 64) return { ok: false, code: 'MALFORMED' };
  let bytes: Uint8Array;
  try {
    bytes = canonicalBytes(value);
  } catch {
    return { ok: false, code: 'MALFORMED' };
  }
  return verify(null, bytes, key, sig) ? { ok: true } : { ok: false, code: 'BAD_SIGNATURE' };
}

export function signEnvelope<T>(signer: Signer, payload: T): SignedEnvelope<T> {
  return { payload, signature: signer.sign(payload) };
}
