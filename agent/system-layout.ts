import { chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { RELEASE_LAYOUT } from './integrity';
import { SYSTEM_PATHS } from './settings';

/**
 * Where a system installation lives (under --root DIR when staged) and the file-tree helpers that
 * give its parts their owners and permissions; installer.ts describes the layout.
 */
export const UNIT_NAME = 'agentina-agent.service';
export const ENTRY = path.join(RELEASE_LAYOUT.dirs[0]!, 'agentina-agent.js');

export type Paths = { runtime: string; config: string; state: string; versions: string; unit: string };
export function systemPaths(root: string | null): { real: Paths; staged: Paths } {
  const real: Paths = {
    runtime: SYSTEM_PATHS.runtime,
    config: SYSTEM_PATHS.config,
    state: SYSTEM_PATHS.state,
    versions: path.join(SYSTEM_PATHS.state, 'versions'),
    unit: SYSTEM_PATHS.unit,
  };
  const at = (p: string) => (root ? path.join(path.resolve(root), p) : p);
  return {
    real,
    staged: {
      runtime: at(real.runtime),
      config: at(real.config),
      state: at(real.state),
      versions: at(real.versions),
      unit: at(real.unit),
    },
  };
}

/** Copies a file or directory tree; `mode` picks each copy's permission bits. */
export function copyTree(from: string, to: string, mode: (file: string, isDir: boolean) => number): void {
  if (lstatSync(from).isDirectory()) {
    mkdirSync(to, { recursive: true, mode: 0o755 });
    for (const e of readdirSync(from)) copyTree(path.join(from, e), path.join(to, e), mode);
    chmodSync(to, mode(to, true));
  } else {
    copyFileSync(from, to);
    chmodSync(to, mode(to, false));
  }
}

export function chownTree(p: string, uid: number, gid: number): void {
  chownSync(p, uid, gid);
  if (lstatSync(p).isDirectory()) for (const e of readdirSync(p)) chownTree(path.join(p, e), uid, gid);
}

export function writable(p: string): void {
  if (!existsSync(p)) return;
  if (lstatSync(p).isDirectory()) {
    chmodSync(p, 0o755);
    for (const e of readdirSync(p)) writable(path.join(p, e));
  }
}
