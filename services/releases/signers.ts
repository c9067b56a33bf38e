import { createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { canonicalize } from '@tufjs/canonical-json';
import { readKeyFile, writeNewKeyFile } from '../../protocol';

/**
 * What signs release metadata. The repository asks for signatures over bytes and never sees a
 * private key: a key file in development, a PKCS#11 token (an HSM) in production
 * (services/releases/pkcs11-signer.ts). Both sign Ed25519, the scheme TUF clients verify.
 */
export type ReleaseSigner = {
  /** The TUF key id: sha256 of the canonical JSON of the public key (as TUF tools compute it). */
  readonly keyId: string;
  /** The TUF public key object: `{ keytype, scheme, keyval: { public: <hex> } }`. */
  readonly publicKey: TufPublicKey;
  /** A detached Ed25519 signature over `data`. */
  sign(data: Buffer): Buffer;
  /** Releases the token session, if any. */
  close(): void;
};

export type TufPublicKey = { keytype: 'ed25519'; scheme: 'ed25519'; keyval: { public: string } };

export function tufPublicKey(raw: Buffer): TufPublicKey {
  if (raw.length !== 32) throw new Error('an Ed25519 public key is 32 bytes');
  return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw.toString('hex') } };
}

export function tufKeyId(key: TufPublicKey): string {
  return createHash('sha256').update(canonicalize(key)).digest('hex');
}

/** The 32 raw bytes of an Ed25519 public key (the SPKI DER ends with them). */
export function rawEd25519(key: KeyObject): Buffer {
  const der = key.export({ type: 'spki', format: 'der' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** A development signer over an Agentina key file (0600, Ed25519), made if missing when `create`. */
export function fileReleaseSigner(file: string, opts: { create?: boolean; kid?: string } = {}): ReleaseSigner {
  if (!existsSync(file)) {
    if (!opts.create) throw new Error(`no signing key at ${file}`);
    writeNewKeyFile(file, opts.kid ?? 'tuf');
  }
  const privateKey = createPrivateKey(readKeyFile(file).privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`${file} does not hold an Ed25519 key`);
  const publicKey = tufPublicKey(rawEd25519(createPublicKey(privateKey)));
  return {
    keyId: tufKeyId(publicKey),
    publicKey,
    sign: (data) => sign(null, data, privateKey),
    close: () => undefined,
  };
}
