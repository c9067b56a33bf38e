import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Agent } from 'node:https';
import path from 'node:path';
import { LengthOrHashMismatchError, UnsignedMetadataError } from '@tufjs/models/dist/error';
import { Updater } from 'tuf-js';
import {
  BadVersionError,
  DownloadHTTPError,
  DownloadLengthMismatchError,
  ExpiredMetadataError,
} from 'tuf-js/dist/error';
import type { UpdateRefusal } from '../protocol';
import type { Journal } from './journal';
import { compareReleaseVersions, isReleaseVersion } from './release-version';
import { trustedKeysSchema, type TrustedKeys } from './settings';
import { createTufFetcher } from './tuf-fetcher';

/**
 * The updater's TUF side: the tuf-js client over `versions/.tuf` and `versions/.download`, the
 * agent releases and the key set the verified targets offer, and what a refusal from tuf-js means.
 */

/** The key set target (services/releases: KEYS_TARGET). */
export const KEYS_TARGET = 'agentina-keys.json';
export const TUF_DIR = '.tuf';
export const DOWNLOAD_DIR = '.download';
/** TUF metadata caps (the repository's files are a few KiB; targets grows by two entries a release). */
const METADATA_LIMITS = {
  rootMaxLength: 64 * 1024,
  timestampMaxLength: 16 * 1024,
  snapshotMaxLength: 64 * 1024,
  targetsMaxLength: 4 * 1024 * 1024,
};

export type AgentTarget = { name: string; version: string; runtimeHash: string; length: number };

/** The agent releases a verified targets metadata offers (`custom.agentina.kind === 'agent'`). */
export function agentTargetsOf(targetsJson: unknown): AgentTarget[] {
  const targets = (targetsJson as { signed?: { targets?: Record<string, unknown> } })?.signed?.targets ?? {};
  const out: AgentTarget[] = [];
  for (const [name, raw] of Object.entries(targets)) {
    const t = raw as {
      length?: unknown;
      custom?: { agentina?: { kind?: unknown; version?: unknown; runtimeHash?: unknown } };
    };
    const a = t.custom?.agentina;
    if (a?.kind !== 'agent' || typeof a.version !== 'string' || !isReleaseVersion(a.version)) continue;
    if (name !== `agentina-agent-${a.version}.tar.gz` || typeof a.runtimeHash !== 'string') continue;
    out.push({ name, version: a.version, runtimeHash: a.runtimeHash, length: Number(t.length) });
  }
  return out.sort((x, y) => compareReleaseVersions(y.version, x.version));
}

export function classify(err: unknown): { reason: UpdateRefusal; detail: string } {
  const detail = (err instanceof Error ? err.message : String(err)).slice(0, 300);
  if (err instanceof ExpiredMetadataError) return { reason: 'frozen', detail };
  // Metadata from another repository state than the one the newer metadata signed for.
  if (/does not match (snapshot|timestamp) version/.test(detail)) return { reason: 'mixed', detail };
  if (err instanceof BadVersionError || /Expected \w+ version|version \d+ is (less than|equal to)/.test(detail))
    return { reason: 'rollback', detail };
  if (err instanceof UnsignedMetadataError || /signed by \d+\/\d+ keys/.test(detail))
    return { reason: 'signature', detail };
  // tuf-js wraps a snapshot whose bytes differ from what the timestamp signed in a plain Error.
  if (err instanceof LengthOrHashMismatchError || /Expected (hash|length)\b/.test(detail))
    return { reason: 'tampered', detail };
  if (err instanceof DownloadLengthMismatchError) return { reason: 'too_large', detail };
  if (err instanceof DownloadHTTPError) return { reason: 'unavailable', detail };
  const code = (err as NodeJS.ErrnoException).code;
  if (code && /^E[A-Z]+$/.test(code) && code !== 'ENOENT' && code !== 'EACCES')
    return { reason: 'unreachable', detail };
  return { reason: 'untrusted', detail };
}

/**
 * tuf-js trusts what is in .tuf/root.json. Every check starts it from the pinned (root-owned)
 * root and walks the signed rotations from there, so nothing the agent's own user can write
 * (this directory) can make it trust a key the pinned root did not certify.
 */
export function prepareTufDir(tufDir: string, pinnedRoot: string): void {
  mkdirSync(tufDir, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(tufDir, 'root.json'), pinnedRoot, { mode: 0o600 });
}

export function tufClient(opts: {
  distUrl: string;
  dir: string;
  tufDir: string;
  httpsAgent?: Agent;
  localAddress?: string;
}): Updater {
  const { dir, tufDir } = opts;
  const base = opts.distUrl.replace(/\/+$/, '');
  return new Updater({
    metadataBaseUrl: `${base}/metadata`,
    targetBaseUrl: `${base}/targets`,
    metadataDir: tufDir,
    targetDir: path.join(dir, DOWNLOAD_DIR),
    fetcher: createTufFetcher({
      tmpDir: path.join(dir, DOWNLOAD_DIR),
      ...(opts.httpsAgent ? { httpsAgent: opts.httpsAgent } : {}),
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    }),
    config: { ...METADATA_LIMITS, fetchTimeout: 30_000 },
  });
}

/** The license and release keys the key set target delivers, held for this process. */
export function createKeyDelivery(dir: string, journal: Pick<Journal, 'append'>) {
  let delivered: TrustedKeys | null = null;
  return {
    /** The key set target, verified by TUF in this process; a damaged or missing one keeps what was there. */
    async refresh(tuf: Updater): Promise<void> {
      const info = await tuf.getTargetInfo(KEYS_TARGET);
      if (!info) return;
      mkdirSync(path.join(dir, DOWNLOAD_DIR), { recursive: true, mode: 0o700 });
      const file = path.join(dir, DOWNLOAD_DIR, KEYS_TARGET);
      await tuf.downloadTarget(info, file);
      const parsed = trustedKeysSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
      rmSync(file, { force: true });
      if (!parsed.success) {
        journal.append('keys.refused', { reason: 'the signed key set is not a trusted-keys document' }, true);
        return;
      }
      if (JSON.stringify(parsed.data) !== JSON.stringify(delivered)) {
        journal.append('keys.updated', {
          license: parsed.data.license.map((k) => k.kid),
          release: parsed.data.release.map((k) => k.kid),
        });
      }
      delivered = parsed.data;
    },
    delivered: (): TrustedKeys | null => delivered,
  };
}
