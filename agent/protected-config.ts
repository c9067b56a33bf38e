import { closeSync, constants, fstatSync, openSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { PrefixStore } from './prefix-store';

/**
 * Where the agent reads what it trusts (license and release public keys, the pinned CA) and the
 * settings that could weaken its checks (manifest location, fingerprint threshold and weights,
 * maximum status age, the control plane URL, the http.get allow-list).
 *
 * - System mode: a root-owned configuration directory (default /etc/agentina-agent/). Before
 *   anything is read, the directory, each file and every parent directory up to / must be owned
 *   by root and not writable by group or others (a parent may be world-writable only with the
 *   sticky bit, like /tmp, which stops others renaming root's entries). Anything owned by the
 *   agent's own user, or writable by it, makes the agent refuse to start: that user could
 *   otherwise swap the trust anchors or loosen the checks.
 * - Development mode (`--user`): the same files live under the user's own prefix. Nothing
 *   protects them from that user, and the agent says so.
 */
export class UnprotectedConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnprotectedConfigError';
  }
}

const modeOf = (m: number) => (m & 0o7777).toString(8).padStart(4, '0');

/**
 * Why `target` (a file or directory) could be changed by someone other than root, or null when
 * only root can change it. Symlinks are resolved first, so the real file and its real parents are
 * judged. `agentUid` is the uid the agent runs as (named in the message when it owns something).
 */
export function protectionProblem(target: string, agentUid: number): string | null {
  let real: string;
  try {
    real = realpathSync(target);
  } catch (err) {
    return `cannot resolve ${target}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  const via = real === path.resolve(target) ? '' : ` (${target} points there)`;
  for (let cur = real, first = true; ; first = false) {
    let st;
    try {
      st = statSync(cur);
    } catch (err) {
      return `cannot inspect ${cur}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
    const what = first ? `${cur}${via}` : `${cur}, a parent directory of ${real}${via},`;
    if (agentUid >= 0 && st.uid === agentUid)
      return `${what} is owned by the agent's own user (uid ${agentUid}), which could change it`;
    if (st.uid !== 0) return `${what} is owned by uid ${st.uid}, not root`;
    if (st.mode & 0o022) {
      const stickyDir = !first && st.isDirectory() && (st.mode & 0o1000) !== 0;
      if (!stickyDir) return `${what} is writable by group or others (mode ${modeOf(st.mode)})`;
    }
    const up = path.dirname(cur);
    if (up === cur) return null;
    cur = up;
  }
}

/** Reads a file only root can change; null when it does not exist. Throws UnprotectedConfigError otherwise. */
export function readProtectedFile(file: string, agentUid: number): string | null {
  try {
    statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
  }
  const problem = protectionProblem(file, agentUid);
  if (problem) throw new UnprotectedConfigError(problem);
  // Its real path runs through root-owned directories nobody else may write: open it there and
  // judge the open file itself, so what is read is what was judged.
  const fd = openSync(realpathSync(file), constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UnprotectedConfigError(`${file} is not a regular file`);
    if (st.uid !== 0 || st.mode & 0o022)
      throw new UnprotectedConfigError(`${file} changed while it was read (owner or mode no longer root-only)`);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** The agent's configuration: trusted keys, settings and the pinned CA, from wherever the mode says. */
export type ConfigSource = {
  mode: 'system' | 'user';
  /** Where it comes from, for messages. */
  where: string;
  readText(name: string): string | null;
  /** Files outside the config directory that must be as protected (runtime, manifest); null when fine. */
  problemWith(file: string): string | null;
};

export function systemConfig(dir: string, agentUid: number): ConfigSource {
  const root = path.resolve(dir);
  const problem = protectionProblem(root, agentUid);
  if (problem) throw new UnprotectedConfigError(problem);
  if (!statSync(root).isDirectory()) throw new UnprotectedConfigError(`${root} is not a directory`);
  return {
    mode: 'system',
    where: root,
    readText: (name) => readProtectedFile(path.join(root, name), agentUid),
    problemWith: (file) => protectionProblem(file, agentUid),
  };
}

export function userConfig(store: PrefixStore): ConfigSource {
  return {
    mode: 'user',
    where: store.root,
    readText: (name) => store.readText(name),
    problemWith: () => null,
  };
}

export const UNPROTECTED_NOTICE =
  'running in an UNPROTECTED DEVELOPMENT MODE (--user): the trust anchors and check settings under the prefix can be changed by this user; install the agent with `agentina-agent install` (as root) to protect them';
