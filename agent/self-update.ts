import { realpathSync } from 'node:fs';
import type { Agent } from 'node:https';
import path from 'node:path';
import { sleepUnlessAborted } from './backoff';
import type { Installation } from './installation';
import { CODE_ROOT } from './integrity';
import type { Journal } from './journal';
import { EXIT_UPDATED, runRelease, verifiedCurrentRelease } from './launcher';
import type { AgentLogger } from './logger';
import { compareReleaseVersions } from './release-version';
import { createUpdater, type AgentUpdater } from './updater';
import { AGENT_VERSION } from './version';

/** How `run` updates itself: the updater over the state's versions/, and the release hand-over. */
export const VERSIONS_DIR = 'versions';

/** Whether this process runs from `<state>/versions/<v>` (an installed update) rather than the pinned runtime. */
export function runningFromVersions(state: string, codeRoot = CODE_ROOT): boolean {
  try {
    const rel = path.relative(realpathSync(path.join(state, VERSIONS_DIR)), realpathSync(codeRoot));
    return rel !== '' && !rel.startsWith('..') && !rel.includes(path.sep);
  } catch {
    return false;
  }
}

export function openUpdater(
  inst: Installation,
  state: string,
  journal: Journal,
  httpsAgent: Agent | undefined,
): AgentUpdater | null {
  if (!inst.tufRoot) return null;
  return createUpdater({
    distUrl: inst.settings.distUrl ?? `${inst.settings.server.replace(/\/+$/, '')}/v1/dist`,
    versionsDir: path.join(state, VERSIONS_DIR),
    pinnedRoot: inst.tufRoot,
    releaseKeys: inst.releaseKeys,
    runningVersion: AGENT_VERSION,
    journal,
    ...(httpsAgent ? { httpsAgent } : {}),
  });
}

/**
 * The pinned runtime hands over to the newest installed release while one is newer than itself:
 * returns the exit code to end with, or null to run the agent in this process.
 */
export async function runInstalledRelease(input: {
  updater: AgentUpdater;
  inst: Installation;
  childArgs: string[];
  journal: Journal;
  logger: AgentLogger;
}): Promise<number | null> {
  const { updater, journal, logger } = input;
  for (let hops = 0; hops < 8; hops++) {
    const rel = verifiedCurrentRelease({ updater });
    if (!rel) return null;
    if ('failed' in rel) {
      // Signed by a key this process does not know yet (a rotated release key, offline): keep it
      // for when the key set arrives, run the pinned runtime meanwhile. Changed files: roll back.
      if (rel.code === 'MANIFEST_SIGNATURE') return null;
      updater.rollBack(rel.failed, rel.reason);
      continue;
    }
    if (compareReleaseVersions(rel.version, AGENT_VERSION) <= 0) return null;
    journal.append('update.starting', { version: rel.version }, true);
    logger.info({ version: rel.version }, 'starting the installed update');
    let stop: (() => void) | null = null;
    const onSignal = () => stop?.();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    const run = await runRelease(
      {
        updater,
        args: input.childArgs,
        onChild: (s) => (stop = s),
      },
      rel,
    );
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    if (run.outcome === 'exited') return run.code;
    if (run.outcome === 'rolled_back')
      logger.error({ version: run.version, to: run.to, reason: run.reason }, 'the update failed to start: rolled back');
  }
  return null;
}

/**
 * Checks every `updateCheckS` (`run` checks once at start), and at once when `wake` fires (a
 * heartbeat answer named a wanted release); resolves when an update or a new key set arrived.
 */
export function watchForUpdates(input: {
  updater: AgentUpdater;
  everyS: number;
  signal: AbortSignal;
  logger: AgentLogger;
  wake?: EventTarget;
}): Promise<boolean> {
  return (async () => {
    while (!input.signal.aborted) {
      const nap = new AbortController();
      const wakeUp = () => nap.abort();
      input.wake?.addEventListener('wake', wakeUp, { once: true });
      await sleepUnlessAborted(input.everyS * 1000, AbortSignal.any([input.signal, nap.signal]));
      input.wake?.removeEventListener('wake', wakeUp);
      if (input.signal.aborted) return false;
      const keysBefore = JSON.stringify(input.updater.deliveredKeys());
      const r = await input.updater.check(new Date()).catch((err: unknown) => ({
        outcome: 'refused' as const,
        reason: 'untrusted' as const,
        detail: err instanceof Error ? err.message : String(err),
      }));
      if (r.outcome === 'installed') {
        input.logger.info({ version: r.version }, 'update installed: restarting into it');
        return true;
      }
      if (r.outcome === 'refused') input.logger.warn({ reason: r.reason, detail: r.detail }, 'update refused');
      else if (JSON.stringify(input.updater.deliveredKeys()) !== keysBefore) {
        input.logger.info('the signed key set changed: restarting with it');
        return true;
      }
    }
    return false;
  })();
}

export { EXIT_UPDATED };
