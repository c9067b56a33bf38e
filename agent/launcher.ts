import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { RELEASE_LAYOUT, RELEASE_NODE, verifyRuntime } from './integrity';
import type { AgentUpdater } from './updater';
import { AGENT_NODE_FLAGS } from './process-tuning';

/**
 * Runs an installed release (`versions/<v>`), on the Node interpreter it carries, as a child of the
 * pinned runtime. The pinned runtime (root-owned in a system install) checks the release, that
 * interpreter included, against its signed manifest before starting it; a child that exits with
 * an error within the start-up window failed its start-up checks, and the release is rolled back
 * (the previous release, or the pinned runtime, runs next).
 * A child that exits with EXIT_UPDATED installed a newer release and asks to be replaced by it.
 */
export const EXIT_UPDATED = 75;
export const STARTUP_WINDOW_MS = 60_000;

export type ReleaseRun =
  | { outcome: 'exited'; code: number }
  | { outcome: 'updated' }
  | { outcome: 'rolled_back'; version: string; to: string | null; reason: string };

export type LaunchDeps = {
  updater: AgentUpdater;
  /** The `run` arguments the child gets (its --config/--state or --user/--prefix). */
  args: string[];
  startupWindowMs?: number;
  /** Called with a stop function while the child runs (SIGTERM handling). */
  onChild?: (stop: () => void) => void;
};

/** The release `current` names, checked file by file against its signed manifest; null if none or not intact. */
export function verifiedCurrentRelease(
  deps: Pick<LaunchDeps, 'updater'>,
): { version: string; dir: string } | { failed: string; reason: string; code: string } | null {
  const rel = deps.updater.currentRelease();
  if (!rel) return null;
  let manifest: unknown = null;
  try {
    manifest = JSON.parse(readFileSync(path.join(rel.dir, RELEASE_LAYOUT.manifest), 'utf8'));
  } catch {
    manifest = null;
  }
  const v = verifyRuntime({
    root: rel.dir,
    manifest,
    keys: deps.updater.releaseKeys(),
    version: rel.version,
    layout: RELEASE_LAYOUT,
  });
  return v.ok ? rel : { failed: rel.version, reason: v.message, code: v.code };
}

/**
 * The interpreter a release runs on: the Node it carries (runtime/bin/node, checked with its
 * other files against the signed manifest), else (a release built without one) this process's.
 */
export function releaseNode(releaseDir: string): string {
  const own = path.join(releaseDir, RELEASE_NODE);
  return existsSync(own) ? own : process.execPath;
}

/** Starts `release` and waits; an early failure rolls it back. */
export async function runRelease(deps: LaunchDeps, release: { version: string; dir: string }): Promise<ReleaseRun> {
  const entry = path.join(release.dir, 'runtime', 'agentina-agent.js');
  const started = Date.now();
  // The environment (AGENT_PROCESS_ENV among it) is inherited from this process.
  const child = spawn(releaseNode(release.dir), [...AGENT_NODE_FLAGS, entry, 'run', ...deps.args], {
    stdio: 'inherit',
  });
  deps.onChild?.(() => child.kill('SIGTERM'));
  const code = await new Promise<number>((resolve) => {
    child.once('error', () => resolve(127));
    child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  });
  if (code === EXIT_UPDATED) return { outcome: 'updated' };
  if (code !== 0 && Date.now() - started < (deps.startupWindowMs ?? STARTUP_WINDOW_MS)) {
    const reason = `exited with code ${code} during start-up`;
    const { to } = deps.updater.rollBack(release.version, reason);
    return { outcome: 'rolled_back', version: release.version, to, reason };
  }
  return { outcome: 'exited', code };
}
