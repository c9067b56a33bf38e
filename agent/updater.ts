import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import type { Agent } from 'node:https';
import path from 'node:path';
import { DownloadHTTPError } from 'tuf-js/dist/error';
import { createKeySet, type KeySet, type UpdateRefusal, type UpdateReport } from '../protocol';
import type { Journal } from './journal';
import { installRelease, prune, switchCurrent } from './release-install';
import { compareReleaseVersions, isReleaseVersion } from './release-version';
import type { TrustedKeys } from './settings';
import { createUpdateStateFile, type UpdateDirective, type UpdateOutcome, type UpdateState } from './update-state';
import {
  agentTargetsOf,
  classify,
  createKeyDelivery,
  DOWNLOAD_DIR,
  prepareTufDir,
  TUF_DIR,
  tufClient,
  type AgentTarget,
} from './update-tuf';

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

export type { UpdateDirective, UpdateOutcome, UpdateRefusal, UpdateState };

/**
 * The update check and the versions it leaves: the TUF side is in update-tuf.ts, the state file in
 * update-state.ts, the writes into the versions directory in release-install.ts.
 */
export function createUpdater(deps: UpdaterDeps) {
  const dir = deps.versionsDir;
  const tufDir = path.join(dir, TUF_DIR);
  const maxTarget = deps.maxTargetBytes ?? 256 * 1024 * 1024;
  const { readState, writeState, floor, record } = createUpdateStateFile({
    dir,
    runningVersion: deps.runningVersion,
    journal: deps.journal,
  });
  const keys = createKeyDelivery(dir, deps.journal);

  /** Release keys: the delivered set once one arrived, else the pinned ones. */
  const releaseKeys = (): KeySet => {
    const delivered = keys.delivered();
    return delivered ? createKeySet(delivered.release) : deps.releaseKeys;
  };

  const client = () =>
    tufClient({
      distUrl: deps.distUrl,
      dir,
      tufDir,
      ...(deps.httpsAgent ? { httpsAgent: deps.httpsAgent } : {}),
      ...(deps.localAddress ? { localAddress: deps.localAddress } : {}),
    });

  return {
    state: readState,

    /** What heartbeats report: the last check's outcome (and refusal reason). */
    report(): UpdateReport | undefined {
      const last = readState().lastCheck;
      return last ? { outcome: last.outcome, at: last.at, ...(last.reason ? { reason: last.reason } : {}) } : undefined;
    },

    /** The license and release keys the last verified check delivered (null: none yet, use the pinned ones). */
    deliveredKeys: (): TrustedKeys | null => keys.delivered(),
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
      prepareTufDir(tufDir, deps.pinnedRoot);
      const tuf = client();
      try {
        await tuf.refresh();
        await keys.refresh(tuf);
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
      const problem = await installRelease({ dir, maxTarget, releaseKeys }, pick, tarball);
      if (problem) {
        rmSync(path.join(dir, `.staging-${pick.version}`), { recursive: true, force: true });
        return record(s, now, { outcome: 'refused', reason: 'bad_release', offered: pick.version, detail: problem });
      }
      switchCurrent(dir, pick.version);
      const next: UpdateState = { ...s, highest: pick.version, previous: s.current, current: pick.version };
      prune(dir, next);
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
      switchCurrent(dir, to);
      writeState({ ...s, current: to, previous: null, failed: [...new Set([...s.failed, version])].slice(-20) });
      rmSync(path.join(dir, version), { recursive: true, force: true });
      deps.journal.append('update.rolled_back', { version, to, reason: reason.slice(0, 300) }, true);
      return { to };
    },
  };
}

export type AgentUpdater = ReturnType<typeof createUpdater>;
