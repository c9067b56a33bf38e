import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  canonicalJson,
  signedReleaseManifestSchema,
  verifySignature,
  type KeySet,
  type ReleaseManifest,
} from '../protocol';

/**
 * The agent's runtime files and their signed manifest; a manifest lists each file with its
 * SHA-256 and size, and `runtimeHash` (sha256 of the canonical JSON of that list) is what
 * heartbeats report. Two layouts:
 *  - a release (what ships; `npm run agent:build`): <release>/runtime/agentina-agent.js, one
 *    self-contained bundle, and <release>/runtime/bin/node, the pinned Node interpreter that runs
 *    it, with <release>/agent-release.json and <release>/trusted-keys.json;
 *  - a source checkout (bin/agentina-agent.js through tsx): agent/, protocol/ and the launcher,
 *    with dist/agent-release.json and dist/trusted-keys.json.
 */
declare const AGENTINA_AGENT_BUNDLE: boolean | undefined;
export const BUNDLED = typeof AGENTINA_AGENT_BUNDLE !== 'undefined' && AGENTINA_AGENT_BUNDLE === true;

export type RuntimeLayout = {
  dirs: readonly string[];
  files: readonly string[];
  manifest: string;
  trustedKeys: string;
};
export const RELEASE_LAYOUT: RuntimeLayout = {
  dirs: ['runtime'],
  files: [],
  manifest: 'agent-release.json',
  trustedKeys: 'trusted-keys.json',
};
export const SOURCE_LAYOUT: RuntimeLayout = {
  dirs: ['agent', 'protocol'],
  files: ['bin/agentina-agent.js'],
  manifest: path.join('dist', 'agent-release.json'),
  trustedKeys: path.join('dist', 'trusted-keys.json'),
};
export const LAYOUT = BUNDLED ? RELEASE_LAYOUT : SOURCE_LAYOUT;
/** The bundle lives in <release>/runtime/; the sources in <repo>/agent/: either way, one up. */
export const CODE_ROOT = path.resolve(__dirname, '..');
export const DEFAULT_MANIFEST_FILE = LAYOUT.manifest;

export type RuntimeFile = ReleaseManifest['files'][number];

function walk(root: string, rel: string, out: string[]): void {
  for (const entry of readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = path.posix.join(rel, entry.name);
    if (entry.isDirectory()) walk(root, r, out);
    else out.push(r);
  }
}

export function listRuntimePaths(root: string, layout: RuntimeLayout = LAYOUT): string[] {
  const out: string[] = [];
  for (const d of layout.dirs) {
    try {
      walk(root, d, out);
    } catch {
      // a missing directory: its files are reported missing by verification
    }
  }
  for (const f of layout.files) {
    try {
      if (statSync(path.join(root, f)).isFile()) out.push(f);
    } catch {
      // reported as missing by verification
    }
  }
  return out.sort();
}

/** A file's SHA-256 and size, read 1 MiB at a time (the release's interpreter alone is 127 MB). */
export function hashFile(file: string): { sha256: string; size: number } {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(file, 'r');
  let size = 0;
  try {
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) {
      hash.update(buf.subarray(0, n));
      size += n;
    }
  } finally {
    closeSync(fd);
  }
  return { sha256: hash.digest('hex'), size };
}

/** Where a release carries its own Node interpreter (covered by the runtime hash like every file in runtime/). */
export const RELEASE_NODE = path.posix.join('runtime', 'bin', 'node');

export function runtimeHashOf(files: RuntimeFile[]): string {
  return createHash('sha256').update(canonicalJson(files)).digest('hex');
}

export function buildReleaseManifest(
  root: string,
  version: string,
  now: Date,
  layout: RuntimeLayout = LAYOUT,
): ReleaseManifest {
  const files = listRuntimePaths(root, layout).map((p) => ({ path: p, ...hashFile(path.join(root, p)) }));
  return {
    kind: 'agentina.release/v1',
    version,
    files,
    runtimeHash: runtimeHashOf(files),
    createdAt: now.toISOString(),
  };
}

export type IntegrityResult =
  | { ok: true; manifest: ReleaseManifest; runtimeHash: string }
  | {
      ok: false;
      code:
        | 'MANIFEST_MISSING'
        | 'MANIFEST_INVALID'
        | 'MANIFEST_SIGNATURE'
        | 'VERSION_MISMATCH'
        | 'FILE_MISSING'
        | 'FILE_EXTRA'
        | 'FILE_MODIFIED';
      file?: string;
      message: string;
    };

/** Verifies the signed manifest, then every runtime file against it: missing, extra or modified files are named. */
export function verifyRuntime(input: {
  root: string;
  manifest: unknown;
  keys: KeySet;
  version: string;
  /** Which files belong to the runtime (default: this process's own layout). */
  layout?: RuntimeLayout;
}): IntegrityResult {
  if (input.manifest === null || input.manifest === undefined)
    return { ok: false, code: 'MANIFEST_MISSING', message: 'no signed release manifest for this build' };
  const parsed = signedReleaseManifestSchema.safeParse(input.manifest);
  if (!parsed.success) return { ok: false, code: 'MANIFEST_INVALID', message: 'the release manifest is malformed' };
  const { manifest, signature } = parsed.data;
  const v = verifySignature(manifest, signature, input.keys);
  if (!v.ok)
    return {
      ok: false,
      code: 'MANIFEST_SIGNATURE',
      message: `the release manifest signature is not trusted (${v.code})`,
    };
  if (manifest.version !== input.version)
    return {
      ok: false,
      code: 'VERSION_MISMATCH',
      message: `the manifest is for ${manifest.version}, this agent is ${input.version}`,
    };
  if (manifest.files.some((f) => path.posix.isAbsolute(f.path) || f.path.split('/').includes('..')))
    return { ok: false, code: 'MANIFEST_INVALID', message: 'the manifest names a path outside the runtime' };
  if (runtimeHashOf(manifest.files) !== manifest.runtimeHash)
    return { ok: false, code: 'MANIFEST_INVALID', message: 'the manifest runtimeHash does not match its file list' };
  const expected = new Map(manifest.files.map((f) => [f.path, f]));
  const present = listRuntimePaths(input.root, input.layout);
  for (const p of present)
    if (!expected.has(p)) return { ok: false, code: 'FILE_EXTRA', file: p, message: `unexpected runtime file ${p}` };
  for (const f of manifest.files) {
    let actual: { sha256: string; size: number };
    try {
      actual = hashFile(path.join(input.root, f.path));
    } catch {
      return { ok: false, code: 'FILE_MISSING', file: f.path, message: `runtime file ${f.path} is missing` };
    }
    if (actual.sha256 !== f.sha256 || actual.size !== f.size)
      return { ok: false, code: 'FILE_MODIFIED', file: f.path, message: `runtime file ${f.path} was modified` };
  }
  return { ok: true, manifest, runtimeHash: manifest.runtimeHash };
}
