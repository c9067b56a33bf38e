import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
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
 * Symmetric secrets of the control plane (SECRET_PURPOSES below) live beside them.
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

/**
 * Symmetric secrets of the control plane alone (32 random bytes each), in `<purpose>.secret.json`
 * (mode 0600) under AGENTINA_KEYS_DIR; every secret ever made stays in the file, the newest last,
 * so what was sealed or signed before a rotation still opens:
 *   update-origin: HMAC of the origin proof the API puts on every workflow Update
 *   task-secrets:  AES-256-GCM sealing of task header values at rest
 *   totp-secrets:  AES-256-GCM sealing of second-factor (TOTP) secrets at rest
 *   webhook-secrets: AES-256-GCM sealing of webhook endpoints' signing secrets at rest
 *   agent-sessions: HMAC key deriving agents' proof-of-possession session keys
 */
export const SECRET_PURPOSES = [
  'update-origin',
  'task-secrets',
  'totp-secrets',
  'webhook-secrets',
  'agent-sessions',
] as const;
export type SecretPurpose = (typeof SECRET_PURPOSES)[number];
export type SecretKey = { kid: string; secret: Buffer };
type SecretKeyFile = { purpose: SecretPurpose; keys: Array<{ kid: string; secret: string; createdAt: string }> };

export function secretKeyFile(dir: string, purpose: SecretPurpose): string {
  return path.join(dir, `${purpose}.secret.json`);
}

function readSecretKeyFile(file: string, purpose: SecretPurpose): SecretKeyFile {
  if ((statSync(file).mode & 0o077) !== 0)
    throw new Error(`secret file ${file} is readable by group or others; chmod 600 it`);
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Partial<SecretKeyFile>;
  const ok =
    raw.purpose === purpose &&
    Array.isArray(raw.keys) &&
    raw.keys.length > 0 &&
    raw.keys.every(
      (k) =>
        typeof k?.kid === 'string' &&
        /^[A-Za-z0-9._-]{1,64}$/.test(k.kid) &&
        typeof k.secret === 'string' &&
        Buffer.from(k.secret, 'base64').length === 32,
    );
  if (!ok) throw new Error(`${file} is not an Agentina ${purpose} secret file`);
  return raw as SecretKeyFile;
}

/** Adds a new secret for `purpose` (it becomes the one in use) and keeps the older ones; returns its key id. */
export function generateSecretKey(dir: string, purpose: SecretPurpose, now = new Date()): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = secretKeyFile(dir, purpose);
  const current: SecretKeyFile = existsSync(file) ? readSecretKeyFile(file, purpose) : { purpose, keys: [] };
  const kid = `${purpose}-${now.toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(4).toString('hex')}`;
  current.keys.push({ kid, secret: randomBytes(32).toString('base64'), createdAt: now.toISOString() });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(current, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return kid;
}

/** A purpose's secrets, the one in use last. Throws when there is none or the file is loose. */
export function readSecretKeys(dir: string, purpose: SecretPurpose): SecretKey[] {
  const file = secretKeyFile(dir, purpose);
  if (!existsSync(file)) throw new Error(`no ${purpose} secret at ${file}; run \`agentina keys ensure\``);
  return readSecretKeyFile(file, purpose).keys.map((k) => ({ kid: k.kid, secret: Buffer.from(k.secret, 'base64') }));
}

export type AnyKeyPurpose = KeyPurpose | SecretPurpose;
export function isSecretPurpose(p: string): p is SecretPurpose {
  return (SECRET_PURPOSES as readonly string[]).includes(p);
}

/** Generates the keys and secrets a purpose lacks (deploy jobs, dev stack, tests); never replaces one. */
export function ensureKeys(
  dir: string,
  purposes: readonly AnyKeyPurpose[] = [...KEY_PURPOSES, ...SECRET_PURPOSES],
): void {
  for (const purpose of purposes) {
    if (isSecretPurpose(purpose)) {
      if (!existsSync(secretKeyFile(dir, purpose))) generateSecretKey(dir, purpose);
    } else if (!existsSync(keyFilePaths(dir, purpose).privateKey)) generatePurposeKey(dir, purpose);
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
