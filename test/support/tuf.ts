import { execFile } from 'node:child_process';
import { canonicalize } from '@tufjs/canonical-json';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { packTarGz } from '../../protocol/tar';
import { runtimeHashOf } from '../../services/releases/releases-service';
import type { ReleaseSigner } from '../../services/releases/signers';
import type { ReleaseManifest, Signer } from '../../protocol';
import { testEnv } from './env';

export type PythonTufResult =
  | { ok: true; found: false }
  | { ok: true; found: true; length: number; custom: Record<string, unknown>; path: string }
  | { ok: false; error: string; message: string };

/** Runs python-tuf's ngclient Updater against `baseUrl` (…/v1/dist) with `trustedRoot` as its first root. */
export async function pythonTufDownload(input: {
  baseUrl: string;
  trustedRoot: string;
  target: string;
  workdir: string;
}): Promise<PythonTufResult> {
  const script = path.join(__dirname, 'python', 'tuf_client.py');
  const { stdout } = await promisify(execFile)(
    'python3',
    [script, input.baseUrl, input.trustedRoot, input.target, input.workdir],
    { env: { ...process.env, PYTHONPATH: testEnv('AGENTINA_TEST_PYTHON_TUF') }, timeout: 30_000 },
  );
  return JSON.parse(stdout.trim().split('\n').pop()!) as PythonTufResult;
}

/** A small release of `version` (or one carrying a real interpreter): its files, the signed manifest and the tarball publish takes. */
export function makeRelease(signer: Signer, version: string, files: Record<string, string | Buffer> = {}) {
  const body = files['runtime/agentina-agent.js'] ?? `#!/usr/bin/env node\nconsole.log('agent ${version}');\n`;
  const all: Record<string, string | Buffer> = { 'runtime/agentina-agent.js': body, ...files };
  const manifest: ReleaseManifest = {
    kind: 'agentina.release/v1',
    version,
    files: Object.entries(all)
      .map(([p, b]) => ({ path: p, sha256: createHash('sha256').update(b).digest('hex'), size: Buffer.byteLength(b) }))
      .sort((a, b) => a.path.localeCompare(b.path)),
    runtimeHash: '',
    createdAt: '2026-11-01T00:00:00.000Z',
  };
  manifest.runtimeHash = runtimeHashOf(manifest.files);
  const signed = { manifest, signature: signer.sign(manifest) };
  const tarball = packTarGz([
    ...Object.entries(all).map(([p, b]) => ({
      path: p,
      mode: 0o755,
      body: typeof b === 'string' ? Buffer.from(b) : b,
    })),
    { path: 'agent-release.json', mode: 0o644, body: Buffer.from(JSON.stringify(signed)) },
  ]);
  return { signed, tarball, files: all };
}

/** TUF metadata as served: the signed part and its signatures. */
export type SignedMetadata = {
  signed: Record<string, unknown> & { version: number };
  signatures: Array<{ keyid: string; sig: string }>;
};

/** `md` changed by `change` and signed by `signers` (the attacker's forgeries, or a legitimate re-sign). */
export function resign(
  md: SignedMetadata,
  signers: ReleaseSigner[],
  change: (s: SignedMetadata['signed']) => void,
): string {
  const signed = structuredClone(md.signed);
  change(signed);
  const bytes = Buffer.from(canonicalize(signed));
  return JSON.stringify({
    signed,
    signatures: signers.map((s) => ({ keyid: s.keyId, sig: s.sign(bytes).toString('hex') })),
  });
}
