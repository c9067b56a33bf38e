/**
 * Builds the agent for the current checkout and signs its runtime manifest with the `release` key:
 *   npm run agent:build [-- --keys-dir DIR] [--out-dir DIR] [--without-node]
 * - a release in --out-dir (default dist/agent): runtime/agentina-agent.js (one self-contained
 *   bundle: this is what ships and what `bench:agent` runs), runtime/bin/node (the pinned Node the
 *   project itself uses, scripts/node-runtime.js, with its licence as runtime/bin/node.LICENSE),
 *   agent-release.json (the signed manifest, which lists the interpreter like every other file)
 *   and trusted-keys.json (the license and release public keys the agent pins). --without-node
 *   leaves the interpreter out (tests that build many releases and are not about it);
 * - the same manifest and keys for the source checkout (dist/agent-release.json,
 *   dist/trusted-keys.json), which bin/agentina-agent.js checks when run through tsx.
 * The release key is generated in the keys directory if it has none.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildSync } from 'esbuild';
import {
  buildReleaseManifest,
  CODE_ROOT,
  RELEASE_LAYOUT,
  RELEASE_NODE,
  SOURCE_LAYOUT,
  type RuntimeLayout,
} from '../agent/integrity';
import { AGENT_VERSION } from '../agent/version';
import { loadConfig } from '../config';
import { ensureKeys, loadPurposeSigner, readPublicKeySetFile, signedReleaseManifestSchema } from '../protocol';
import { ensurePinnedNode, installedPinnedNode, PINNED } from './node-runtime';

export type BuiltManifest = {
  root: string;
  manifestFile: string;
  trustedKeysFile: string;
  runtimeHash: string;
  files: number;
};
export type BuiltRelease = BuiltManifest & { entry: string };

function signAndWrite(input: { keysDir: string; root: string; layout: RuntimeLayout; now?: Date }): BuiltManifest {
  ensureKeys(input.keysDir, ['license', 'release']);
  const signer = loadPurposeSigner(input.keysDir, 'release');
  const manifest = buildReleaseManifest(input.root, AGENT_VERSION, input.now ?? new Date(), input.layout);
  const signed = signedReleaseManifestSchema.parse({ manifest, signature: signer.sign(manifest) });
  const publicKeys = (purpose: 'license' | 'release') =>
    readPublicKeySetFile(input.keysDir, purpose).keys.map(({ kid, publicKeyPem }) => ({ kid, publicKeyPem }));
  const manifestFile = path.join(input.root, input.layout.manifest);
  const trustedKeysFile = path.join(input.root, input.layout.trustedKeys);
  mkdirSync(path.dirname(manifestFile), { recursive: true, mode: 0o755 });
  writeFileSync(manifestFile, `${JSON.stringify(signed, null, 2)}\n`, { mode: 0o644 });
  writeFileSync(
    trustedKeysFile,
    `${JSON.stringify({ license: publicKeys('license'), release: publicKeys('release') }, null, 2)}\n`,
    { mode: 0o644 },
  );
  return {
    root: input.root,
    manifestFile,
    trustedKeysFile,
    runtimeHash: manifest.runtimeHash,
    files: manifest.files.length,
  };
}

/**
 * The pinned Node binary: the one in .tools/node, else this process's when it is the pinned
 * version (a worktree run with another checkout's .tools/node on PATH), else fetched now.
 */
export function pinnedNodeBinary(): string {
  return (
    installedPinnedNode() ?? (process.version === `v${PINNED.version}` ? process.execPath : ensurePinnedNode().bin)
  );
}

/** Copies the interpreter (and its licence) into the release; executable, covered by the manifest. */
function addNode(root: string, node: string): void {
  const dest = path.join(root, RELEASE_NODE);
  mkdirSync(path.dirname(dest), { recursive: true, mode: 0o755 });
  copyFileSync(node, dest);
  chmodSync(dest, 0o755);
  const license = path.join(path.dirname(node), '..', 'LICENSE');
  if (existsSync(license)) copyFileSync(license, `${dest}.LICENSE`);
}

/**
 * Bundles agent/ (with protocol/ and its npm dependencies) into one file and signs the release,
 * with the pinned Node interpreter unless `node` is false (a path picks another binary).
 */
export function buildAgentRelease(input: {
  keysDir: string;
  outDir?: string;
  now?: Date;
  node?: string | false;
}): BuiltRelease {
  const root = path.resolve(input.outDir ?? path.join(CODE_ROOT, 'dist', 'agent'));
  const runtimeDir = path.join(root, RELEASE_LAYOUT.dirs[0]!);
  rmSync(runtimeDir, { recursive: true, force: true });
  mkdirSync(runtimeDir, { recursive: true, mode: 0o755 });
  const entry = path.join(runtimeDir, 'agentina-agent.js');
  buildSync({
    entryPoints: [path.join(CODE_ROOT, 'agent', 'bundle-entry.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile: entry,
    // A small young generation keeps an idle agent's resident memory low; it allocates little.
    banner: { js: "#!/usr/bin/env node\nrequire('node:v8').setFlagsFromString('--max-semi-space-size=1');" },
    define: { AGENTINA_AGENT_BUNDLE: 'true' },
    legalComments: 'none',
    logLevel: 'error',
  });
  chmodSync(entry, 0o755);
  if (input.node !== false) addNode(root, input.node ?? pinnedNodeBinary());
  return {
    ...signAndWrite({ keysDir: input.keysDir, root, layout: RELEASE_LAYOUT, ...(input.now ? { now: input.now } : {}) }),
    entry,
  };
}

/** The manifest of the source checkout, for bin/agentina-agent.js (dist/agent-release.json). */
export function buildAgentManifest(input: { keysDir: string; now?: Date }): BuiltManifest {
  return signAndWrite({
    keysDir: input.keysDir,
    root: CODE_ROOT,
    layout: SOURCE_LAYOUT,
    ...(input.now ? { now: input.now } : {}),
  });
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const keysDir = flag(argv, 'keys-dir') ?? loadConfig(process.env).keysDir;
  const outDir = flag(argv, 'out-dir');
  const release = buildAgentRelease({
    keysDir,
    ...(outDir ? { outDir } : {}),
    ...(argv.includes('--without-node') ? { node: false as const } : {}),
  });
  const source = buildAgentManifest({ keysDir });
  console.log(
    `agent ${AGENT_VERSION} release: ${release.entry}\n  manifest ${release.manifestFile} (${release.files} files, runtimeHash ${release.runtimeHash})`,
  );
  console.log(
    `source checkout manifest: ${source.manifestFile} (${source.files} files, runtimeHash ${source.runtimeHash})`,
  );
}
