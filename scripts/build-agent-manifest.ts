/**
 * Builds and signs the agent's runtime manifest for the current checkout:
 *   npm run agent:manifest [-- --keys-dir DIR] [--out FILE] [--trusted-keys-out FILE]
 * Hashes every runtime file (agent/, protocol/, bin/agentina-agent.js), signs the manifest with
 * the `release` key (generated if the keys directory has none), and writes the agent's pinned
 * trusted-keys file (license + release public keys) next to it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildReleaseManifest, CODE_ROOT, DEFAULT_MANIFEST_FILE } from '../agent/integrity';
import { AGENT_VERSION } from '../agent/version';
import { loadConfig } from '../config';
import { ensureKeys, loadPurposeSigner, readPublicKeySetFile, signedReleaseManifestSchema } from '../protocol';

export type BuiltManifest = { manifestFile: string; trustedKeysFile: string; runtimeHash: string; files: number };

export function buildAgentManifest(input: { keysDir: string; out?: string; trustedKeysOut?: string; root?: string; now?: Date }): BuiltManifest {
  const root = input.root ?? CODE_ROOT;
  const out = path.resolve(input.out ?? path.join(root, DEFAULT_MANIFEST_FILE));
  const trustedKeysOut = path.resolve(input.trustedKeysOut ?? path.join(path.dirname(out), 'trusted-keys.json'));
  ensureKeys(input.keysDir, ['license', 'release']);
  const signer = loadPurposeSigner(input.keysDir, 'release');
  const manifest = buildReleaseManifest(root, AGENT_VERSION, input.now ?? new Date());
  const signed = signedReleaseManifestSchema.parse({ manifest, signature: signer.sign(manifest) });
  const publicKeys = (purpose: 'license' | 'release') => readPublicKeySetFile(input.keysDir, purpose).keys.map(({ kid, publicKeyPem }) => ({ kid, publicKeyPem }));
  mkdirSync(path.dirname(out), { recursive: true });
  mkdirSync(path.dirname(trustedKeysOut), { recursive: true });
  writeFileSync(out, `${JSON.stringify(signed, null, 2)}\n`, { mode: 0o644 });
  writeFileSync(trustedKeysOut, `${JSON.stringify({ license: publicKeys('license'), release: publicKeys('release') }, null, 2)}\n`, { mode: 0o644 });
  return { manifestFile: out, trustedKeysFile: trustedKeysOut, runtimeHash: manifest.runtimeHash, files: manifest.files.length };
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const keysDir = flag(argv, 'keys-dir') ?? loadConfig(process.env).keysDir;
  const r = buildAgentManifest({ keysDir, ...(flag(argv, 'out') ? { out: flag(argv, 'out') } : {}), ...(flag(argv, 'trusted-keys-out') ? { trustedKeysOut: flag(argv, 'trusted-keys-out') } : {}) });
  console.log(`signed agent manifest: ${r.files} files, runtimeHash ${r.runtimeHash}\n  ${r.manifestFile}\n  ${r.trustedKeysFile}`);
}
