import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import type { KeySet } from '../protocol';
import { TarError } from '../protocol/tar';
import { RELEASE_LAYOUT, verifyRuntime } from './integrity';
import { isReleaseVersion } from './release-version';
import { unpackTarGzFile } from './unpack';
import { STATE_FILE, type UpdateState } from './update-state';
import { DOWNLOAD_DIR, TUF_DIR, type AgentTarget } from './update-tuf';

/**
 * What an update writes in the versions directory once tuf-js has the tarball: the checked
 * release in `versions/<v>`, the `current` symlink, and the removal of releases no longer kept.
 */

/**
 * Unpacks the downloaded tarball into .staging-<v> as a stream (never the whole release in
 * memory), checks every file against the pinned-key-signed manifest, moves it to <v>.
 */
export async function installRelease(
  deps: { dir: string; maxTarget: number; releaseKeys: () => KeySet },
  target: AgentTarget,
  tarball: string,
): Promise<string | null> {
  const { dir, maxTarget } = deps;
  const staging = path.join(dir, `.staging-${target.version}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { mode: 0o700 });
  const allowedOutside = new Set([RELEASE_LAYOUT.manifest, RELEASE_LAYOUT.trustedKeys]);
  try {
    await unpackTarGzFile(tarball, staging, {
      maxBytes: maxTarget * 4,
      maxEntries: 10_000,
      refuse: (p) =>
        p.startsWith('runtime/') || allowedOutside.has(p) ? null : `the release holds ${p}, outside its runtime`,
    });
  } catch (e) {
    return e instanceof TarError ? e.message : 'the release tarball cannot be read';
  } finally {
    rmSync(tarball, { force: true });
  }
  let manifest: unknown = null;
  try {
    manifest = JSON.parse(readFileSync(path.join(staging, RELEASE_LAYOUT.manifest), 'utf8'));
  } catch {
    manifest = null;
  }
  const verified = verifyRuntime({
    root: staging,
    manifest,
    keys: deps.releaseKeys(),
    version: target.version,
    layout: RELEASE_LAYOUT,
  });
  if (!verified.ok) return verified.message;
  if (verified.runtimeHash !== target.runtimeHash)
    return 'the signed manifest is not the one the TUF target names (runtimeHash differs)';
  const final = path.join(dir, target.version);
  rmSync(final, { recursive: true, force: true });
  renameSync(staging, final);
  return null;
}

/** Points `current` at `version` by renaming a fresh symlink over it. */
export function switchCurrent(dir: string, version: string | null): void {
  const link = path.join(dir, 'current');
  if (version === null) {
    rmSync(link, { force: true });
    return;
  }
  const tmp = path.join(dir, 'current.tmp');
  rmSync(tmp, { force: true });
  symlinkSync(version, tmp);
  renameSync(tmp, link);
}

/** Keeps the current and previous versions; removes older ones and leftovers. */
export function prune(dir: string, s: UpdateState): void {
  const keep = new Set([s.current, s.previous, TUF_DIR, STATE_FILE, 'current']);
  for (const name of readdirSync(dir)) {
    if (keep.has(name)) continue;
    if (isReleaseVersion(name) || name.startsWith('.staging-') || name === DOWNLOAD_DIR)
      rmSync(path.join(dir, name), { recursive: true, force: true });
  }
}
