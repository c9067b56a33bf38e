import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HeartbeatResponse, UpdateRefusal } from '../protocol';
import type { Journal } from './journal';
import { compareReleaseVersions, isReleaseVersion } from './release-version';

/**
 * The updater's memory, `versions/update-state.json`: the highest version ever installed (the
 * downgrade floor), current, previous, failed, the last check's outcome and the last directive
 * heard; and the journal entry each check's outcome leaves.
 */
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

export const STATE_FILE = 'update-state.json';

export function createUpdateStateFile(deps: { dir: string; runningVersion: string; journal: Pick<Journal, 'append'> }) {
  const { dir } = deps;

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

  return { readState, writeState, floor, record };
}
