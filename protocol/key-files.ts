import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { createKeySet, createSigner, generateKeyFile, type KeyFile, type KeySet, type Signer } from './signer';

const keyFileSchema = z.strictObject({
  kid: z.string().min(1).max(64),
  alg: z.literal('Ed25519'),
  privateKeyPem: z.string().min(1).max(4096),
  publicKeyPem: z.string().min(1).max(4096),
  createdAt: z.string().max(64),
});

/** Writes a new key file readable by its owner only (0600); refuses to overwrite one. */
export function writeNewKeyFile(file: string, kid: string): KeyFile {
  const key = generateKeyFile(kid);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return key;
}

export function readKeyFile(file: string): KeyFile {
  const mode = statSync(file).mode & 0o077;
  if (mode !== 0) throw new Error(`key file ${file} is readable by group or others; chmod 600 it`);
  const parsed = keyFileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`key file ${file} is not an Agentina Ed25519 key file`);
  return parsed.data;
}

export function loadSigner(file: string): Signer {
  return createSigner(readKeyFile(file));
}

/** A public key set file: `{ keys: [{ kid, publicKeyPem }] }`, or a single key file's public half. */
export function loadKeySet(files: string[]): KeySet {
  const keys: Array<{ kid: string; publicKeyPem: string }> = [];
  for (const f of files) {
    const raw = JSON.parse(readFileSync(f, 'utf8')) as {
      keys?: Array<{ kid: string; publicKeyPem: string }>;
      kid?: string;
      publicKeyPem?: string;
    };
    if (Array.isArray(raw.keys)) keys.push(...raw.keys);
    else if (raw.kid && raw.publicKeyPem) keys.push({ kid: raw.kid, publicKeyPem: raw.publicKeyPem });
    else throw new Error(`${f} holds no public keys`);
  }
  return createKeySet(keys);
}
