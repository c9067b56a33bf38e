/** Types for scripts/node-runtime.js (plain JavaScript: it runs before dependencies are installed). */

export type PinnedNode = {
  name: string;
  version: string;
  integrity: string;
  platform: string;
  arch: string;
};

export const FLOOR: string;
export const PINNED: PinnedNode;
export const ROOT: string;

export function parseVersion(version: string): [number, number, number];
export function compareVersions(a: string, b: string): number;
export function needsPinnedNode(version: string, floor?: string): boolean;
export function shortVersion(version: string): string;
export function nodeDir(root?: string): string;
export function installedPinnedNode(root?: string, pinned?: PinnedNode): string | null;
export function ensurePinnedNode(
  root?: string,
  pinned?: PinnedNode,
  opts?: { npm?: string },
): { bin: string; fetched: boolean };
export function pinnedEnv(bin: string, env?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
export function pinnedNodeIfTooOld(opts?: { root?: string; version?: string }): string | null;
export function reexecIfTooOld(opts?: { root?: string; version?: string }): boolean;
