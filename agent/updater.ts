import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
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
import { createKeySet, type HeartbeatResponse, type KeySet, type UpdateRefusal, type UpdateReport } from '../protocol';
import { TarError } from '../protocol/tar';
import { RELEASE_LAYOUT, verifyRuntime } from './integrity';
import type { Journal } from './journal';
import { compareReleaseVersions, isReleaseVersion } from './release-version';
import { trustedKeysSchema, type TrustedKeys } from './settings';
import { createTufFetcher } from './tuf-fetcher';
import { unpackTarGzFile } from './unpack';

/**
 * The agent's self-update, through tuf-js against the distribution origin (`/v1/dist` of the
 * control plane, or a mirror). Only the versions directory is written:
 *
 *   versions/.tuf/            TUF metadata tuf-js trusts (starting from the pinned root)
 *   versions/.download/       a target while it is downloaded and hash-checked
 *   versions/.staging-<v>/    a release while its files are checked against its signed manifest
 *   versions/<v>/             an installed release (runtime/ with its own bin/node, agent-release.json,
 *                             trusted-keys.json)
 *   versions/current          symlink to `<v>`, switched by rename (atomic)
 *   versions/update-state.json  highest version ever installed, current, previous, failed
 *
 * Refused: anything TUF refuses (unsigned or under-threshold metadata, rollback of metadata
 * versions, expired metadata = a frozen repository, mixed metadata whose hashes do not match,
 * oversized metadata or targets, tampered bytes), a release whose manifest the pinned release key
 * did not sign or that differs from its TUF target, and a downgrade below the highest version ever
 * installed (persisted). A version that failed to start is never installed again.
 */
export type UpdaterDeps = {
  /** The distribution origin's TUF base, e.g. https://cp.example/v1/dist. */
  distUrl: string;
  versionsDir: string;
  /** The pinned TUF root (JSON text), read from a root-owned place. */
  pinnedRoot: string;
  /** The pinned release keys: every installed release's manifest must verify against them. */
  releaseKeys: KeySet;
  /** The version of the runtime that runs this code (the floor when nothing was installed yet). */
  runningVersion: string;
  journal: Pick<Journal, 'append'>;
  httpsAgent?: Agent;
  /** Largest release tarball accepted, whatever its signed length says (default 256 MiB). */
  maxTargetBytes?: number;
  /** Connect from this source address (a host with several; the fleet benchmark). */
  localAddress?: string;
};

export type { UpdateRefusal };

export type UpdateOutcome =
  | { outcome: 'current'; version: string }
  | { outcome: 'installed'; version: string; previous: string | null }
  | { outcome: 'refused'; reason: UpdateRefusal; detail: string; offered?: string };

/** What the control plane's heartbeat answer says: the license's update policy and an admin's wanted release. */
export type UpdateDirective = NonNullable<HeartbeatResponse['update']>;

export type UpdateState = {
  highest: string;
  current: string | null;
  previous: string | null;
  failed: string[];
  lastCheck?: { at: string; outcome: UpdateOutcome['outcome']; reason?: UpdateRefusal };
  /** The last directive heard (kept across restarts, so a `manual` agent does not update at start). */
  directive?: UpdateDirective;
};

const STATE_FILE = 'update-state.json';
/** The key set target (services/releases: KEYS_TARGET). */
export const KEYS_TARGET = 'agentina-keys.json';
const TUF_DIR = '.tuf';
const DOWNLOAD_DIR = '.download';
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

function classify(err: unknown): { reason: UpdateRefusal; detail: string } {
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

export function createUpdater(deps: UpdaterDeps) {
  const dir = deps.versionsDir;
  const tufDir = path.join(dir, TUF_DIR);
  const maxTarget = deps.maxTargetBytes ?? 256 * 1024 * 1024;

  function readState(): UpdateState {
    try {
      const s = JSON.parse(readFileSync(path.join(dir, STATE_FILE), 'utf8')) as UpdateState;
      if (isReleaseVersion(s.highest) && Array.isArray(s.failed)) return s;
    } catch {
      // first run, or a damaged file: the running version is the floor
    }
    return { highest: deps.runningVersion, current: null, previous: null, failed: [] };
  }

  function writeState(s: UpdateState): void {
    const tmp = path.join(dir, `${STATE_FILE}.tmp`);
    writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, path.join(dir, STATE_FILE));
  }

  /** The highest version ever installed never goes down, even when the running one is older. */
  function floor(s: UpdateState): string {
    return compareReleaseVersions(s.highest, deps.runningVersion) >= 0 ? s.highest : deps.runningVersion;
  }

  /**
   * tuf-js trusts what is in .tuf/root.json. Every check starts it from the pinned (root-owned)
   * root and walks the signed rotations from there, so nothing the agent's own user can write
   * (this directory) can make it trust a key the pinned root did not certify.
   */
  function prepareTufDir(): void {
    mkdirSync(tufDir, { recursive: true, mode: 0o700 });
    writeFileSync(path.join(tufDir, 'root.json'), deps.pinnedRoot, { mode: 0o600 });
  }

  let delivered: TrustedKeys | null = null;
  /** The key set target, verified by TUF in this process; a damaged or missing one keeps what was there. */
  async function refreshKeys(tuf: Updater): Promise<void> {
    const info = await tuf.getTargetInfo(KEYS_TARGET);
    if (!info) return;
    mkdirSync(path.join(dir, DOWNLOAD_DIR), { recursive: true, mode: 0o700 });
    const file = path.join(dir, DOWNLOAD_DIR, KEYS_TARGET);
    await tuf.downloadTarget(info, file);
    const parsed = trustedKeysSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    rmSync(file, { force: true });
    if (!parsed.success) {
      deps.journal.append('keys.refused', { reason: 'the signed key set is not a trusted-keys document' }, true);
      return;
    }
    if (JSON.stringify(parsed.data) !== JSON.stringify(delivered)) {
      deps.journal.append('keys.updated', {
        license: parsed.data.license.map((k) => k.kid),
        release: parsed.data.release.map((k) => k.kid),
      });
    }
    delivered = parsed.data;
  }

  /** Release keys: the delivered set once one arrived, else the pinned ones. */
  const releaseKeys = () => (delivered ? createKeySet(delivered.release) : deps.releaseKeys);

  function client(): Updater {
    const base = deps.distUrl.replace(/\/+$/, '');
    return new Updater({
      metadataBaseUrl: `${base}/metadata`,
      targetBaseUrl: `${base}/targets`,
      metadataDir: tufDir,
      targetDir: path.join(dir, DOWNLOAD_DIR),
      fetcher: createTufFetcher({
        tmpDir: path.join(dir, DOWNLOAD_DIR),
        ...(deps.httpsAgent ? { httpsAgent: deps.httpsAgent } : {}),
        ...(deps.localAddress ? { localAddress: deps.localAddress } : {}),
      }),
      config: { ...METADATA_LIMITS, fetchTimeout: 30_000 },
    });
  }

  /**
   * Unpacks the downloaded tarball into .staging-<v> as a stream (never the whole release in
   * memory), checks every file against the pinned-key-signed manifest, moves it to <v>.
   */
  async function installRelease(target: AgentTarget, tarball: string): Promise<string | null> {
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
      keys: releaseKeys(),
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
  function switchCurrent(version: string | null): void {
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
  function prune(s: UpdateState): void {
    const keep = new Set([s.current, s.previous, TUF_DIR, STATE_FILE, 'current']);
    for (const name of readdirSync(dir)) {
      if (keep.has(name)) continue;
      if (isReleaseVersion(name) || name.startsWith('.staging-') || name === DOWNLOAD_DIR)
        rmSync(path.join(dir, name), { recursive: true, force: true });
    }
  }

  function record(s: UpdateState, at: Date, result: UpdateOutcome): UpdateOutcome {
    writeState({
      ...s,
      lastCheck: {
        at: at.toISOString(),
        outcome: result.outcome,
        ...(result.outcome === 'refused' ? { reason: result.reason } : {}),
      },
    });
    if (result.outcome === 'refused')
      deps.journal.append(
        `update.${result.reason === 'frozen' ? 'frozen' : 'refused'}`,
        { reason: result.reason, detail: result.detail, ...(result.offered ? { offered: result.offered } : {}) },
        true,
      );
    else if (result.outcome === 'installed')
      deps.journal.append('update.installed', { version: result.version, previous: result.previous }, true);
    return result;
  }

  return {
    state: readState,

    /** What heartbeats report: the last check's outcome (and refusal reason). */
    report(): UpdateReport | undefined {
      const last = readState().lastCheck;
      return last ? { outcome: last.outcome, at: last.at, ...(last.reason ? { reason: last.reason } : {}) } : undefined;
    },

    /** The license and release keys the last verified check delivered (null: none yet, use the pinned ones). */
    deliveredKeys: (): TrustedKeys | null => delivered,
    releaseKeys,

    /**
     * Keeps the heartbeat answer's directive; true when it asks for a release not yet installed
     * (check now rather than at the next scheduled check).
     */
    direct(d: UpdateDirective): boolean {
      const s = readState();
      const next: UpdateDirective = { policy: d.policy, ...(d.wanted ? { wanted: d.wanted } : {}) };
      if (JSON.stringify(next) === JSON.stringify(s.directive)) return false;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeState({ ...s, directive: next });
      return next.wanted !== undefined && next.wanted !== s.current;
    },

    /**
     * One update check: refresh the TUF metadata, pick the highest agent release offered, and
     * install it when it is above every version ever installed. `wanted` pins a version (an
     * admin's choice, else the one the last directive named); it is still refused when below the
     * floor. Under a `manual` policy nothing but a wanted version is installed (the key set still
     * arrives).
     */
    async check(now: Date, opts: { wanted?: string } = {}): Promise<UpdateOutcome> {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const s = readState();
      prepareTufDir();
      const tuf = client();
      try {
        await tuf.refresh();
        await refreshKeys(tuf);
      } catch (err) {
        return record(s, now, { outcome: 'refused', ...classify(err) });
      }
      let offered: AgentTarget[];
      try {
        offered = agentTargetsOf(JSON.parse(readFileSync(path.join(tufDir, 'targets.json'), 'utf8')));
      } catch {
        offered = [];
      }
      const wanted = opts.wanted ?? s.directive?.wanted;
      const low = floor(s);
      if (!wanted && s.directive?.policy === 'manual') return record(s, now, { outcome: 'current', version: low });
      const candidates = offered.filter((t) => !s.failed.includes(t.version));
      const pick = wanted ? candidates.find((t) => t.version === wanted) : candidates[0];
      if (!pick) {
        if (wanted)
          return record(s, now, { outcome: 'refused', reason: 'unavailable', detail: `${wanted} is not offered` });
        return record(s, now, { outcome: 'current', version: low });
      }
      // After a rollback the release running is below the highest installed: that is not a downgrade.
      if (pick.version === s.current) return record(s, now, { outcome: 'current', version: pick.version });
      const cmp = compareReleaseVersions(pick.version, low);
      if (cmp === 0) return record(s, now, { outcome: 'current', version: low });
      if (cmp < 0)
        return record(s, now, {
          outcome: 'refused',
          reason: 'downgrade',
          offered: pick.version,
          detail: `${pick.version} is below ${low}, the highest version installed`,
        });
      if (pick.length > maxTarget)
        return record(s, now, {
          outcome: 'refused',
          reason: 'too_large',
          offered: pick.version,
          detail: `the release is ${pick.length} bytes; at most ${maxTarget} are accepted`,
        });
      let tarball: string;
      try {
        const info = await tuf.getTargetInfo(pick.name);
        if (!info) throw new DownloadHTTPError(`${pick.name} is not in the signed targets`, 404);
        mkdirSync(path.join(dir, DOWNLOAD_DIR), { recursive: true, mode: 0o700 });
        tarball = await tuf.downloadTarget(info, path.join(dir, DOWNLOAD_DIR, pick.name));
      } catch (err) {
        return record(s, now, { outcome: 'refused', offered: pick.version, ...classify(err) });
      }
      const problem = await installRelease(pick, tarball);
      if (problem) {
        rmSync(path.join(dir, `.staging-${pick.version}`), { recursive: true, force: true });
        return record(s, now, { outcome: 'refused', reason: 'bad_release', offered: pick.version, detail: problem });
      }
      switchCurrent(pick.version);
      const next: UpdateState = { ...s, highest: pick.version, previous: s.current, current: pick.version };
      prune(next);
      return record(next, now, { outcome: 'installed', version: pick.version, previous: s.current });
    },

    /** The installed release to run (`versions/<v>`), or null to run the pinned runtime. */
    currentRelease(): { version: string; dir: string } | null {
      const s = readState();
      let linked: string;
      try {
        linked = readlinkSync(path.join(dir, 'current'));
      } catch {
        return null;
      }
      if (!isReleaseVersion(linked) || linked !== s.current || s.failed.includes(linked)) return null;
      const release = path.join(dir, linked);
      return existsSync(release) ? { version: linked, dir: release } : null;
    },

    /** The new version failed its start: back to the previous one (or the pinned runtime), never again to it. */
    rollBack(version: string, reason: string): { to: string | null } {
      const s = readState();
      const to = s.current === version ? s.previous : s.current;
      switchCurrent(to);
      writeState({ ...s, current: to, previous: null, failed: [...new Set([...s.failed, version])].slice(-20) });
      rmSync(path.join(dir, version), { recursive: true, force: true });
      deps.journal.append('update.rolled_back', { version, to, reason: reason.slice(0, 300) }, true);
      return { to };
    },
  };
}

export type AgentUpdater = ReturnType<typeof createUpdater>;
