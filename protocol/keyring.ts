import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadSigner, writeNewKeyFile } from './key-files';
import { createKeySet, type KeySet, type Signer } from './signer';

/**
 * Signing keys live in files under AGENTINA_KEYS_DIR, one active private key per purpose
 * (`<purpose>.key`, mode 0600) and a public key set per purpose (`<purpose>.pub.json`) that keeps
 * every key ever used, so signatures made before a rotation still verify.
 *   license: license documents, status answers, revocation lists
 *   audit:   audit checkpoints
 *   release: release manifests
 */
export const KEY_PURPOSES = ['license', 'audit', 'release'] as const;
export type KeyPurpose = (typeof KEY_PURPOSES)[number];

export type PublicKeySetFile = {
  purpose: KeyPurpose;
  keys: Array<{ kid: string; publicKeyPem: string; createdAt: string }>;
};

export function keyFilePaths(dir: string, purpose: KeyPurpose) {
  return { privateKey: path.join(dir, `${purpose}.key`), publicSet: path.join(dir, `${purpose}.pub.json`) };
}

function readPublicSet(file: string, purpose: KeyPurpose): PublicKeySetFile {
  if (!existsSync(file)) return { purpose, keys: [] };
  return JSON.parse(readFileSync(file, 'utf8')) as PublicKeySetFile;
}

/**
 * Makes a new active key for `purpose` (0600), retiring the previous private key file, and adds
 * its public half to the purpose's public key set. Returns the new key id.
 */
export function generatePurposeKey(dir: string, purpose: KeyPurpose, now = new Date()): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const paths = keyFilePaths(dir, purpose);
  const kid = `${purpose}-${now.toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(4).toString('hex')}`;
  if (existsSync(paths.privateKey)) renameSync(paths.privateKey, `${paths.privateKey}.retired-${now.getTime()}`);
  const key = writeNewKeyFile(paths.privateKey, kid);
  const set = readPublicSet(paths.publicSet, purpose);
  set.keys.push({ kid, publicKeyPem: key.publicKeyPem, createdAt: key.createdAt });
  writeFileSync(paths.publicSet, `${JSON.stringify(set, null, 2)}\n`, { mode: 0o644 });
  return kid;
}

/** Generates the keys a purpose lacks (dev stack and tests); never replaces an existing key. */
export function ensureKeys(dir: string, purposes: readonly KeyPurpose[] = KEY_PURPOSES): void {
  for (const purpose of purposes) {
    if (!existsSync(keyFilePaths(dir, purpose).privateKey)) generatePurposeKey(dir, purpose);
  }
}

export function loadPurposeSigner(dir: string, purpose: KeyPurpose): Signer {
  const file = keyFilePaths(dir, purpose).privateKey;
  if (!existsSync(file))
    throw new Error(`no ${purpose} signing key at ${file}; run \`agentina keys generate --purpose ${purpose}\``);
  return loadSigner(file);
}

export function loadPurposeKeySet(dir: string, purpose: KeyPurpose): KeySet {
  const set = readPublicSet(keyFilePaths(dir, purpose).publicSet, purpose);
  return createKeySet(set.keys);
}

export function readPublicKeySetFile(dir: string, purpose: KeyPurpose): PublicKeySetFile {
  return readPublicSet(keyFilePaths(dir, purpose).publicSet, purpose);
}
