import { statSync } from 'node:fs';
import path from 'node:path';
import {
  CODE_ROOT,
  hashFile,
  LAYOUT,
  listRuntimePaths,
  runtimeHashOf,
  type RuntimeFile,
  type RuntimeLayout,
} from './integrity';

/** What identifies one version of a file on disk: re-hashed when any of these moves. */
type FileIdentity = { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number };
type Cached = FileIdentity & { sha256: string };

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/**
 * The runtime hash of the files this process runs from, computed afresh on every call (every
 * heartbeat), never read from the manifest: the same `runtimeHashOf` list a signed manifest
 * carries, over the files present now. A file is re-read only when its identity (device, inode,
 * size, mtime, or ctime, which its owner cannot set back) changed since the last call; a file
 * added, removed or rewritten changes the hash, which the control plane then judges.
 */
export function createRuntimeHasher(
  opts: {
    root?: string;
    layout?: RuntimeLayout;
    /** How one file is hashed (the integrity check's own by default). */
    hash?: (file: string) => { sha256: string; size: number };
  } = {},
) {
  const root = opts.root ?? CODE_ROOT;
  const layout = opts.layout ?? LAYOUT;
  const hash = opts.hash ?? hashFile;
  let cache = new Map<string, Cached>();

  return {
    /** The runtime hash of the files as they are now. */
    current(): string {
      const next = new Map<string, Cached>();
      const files: RuntimeFile[] = [];
      for (const rel of listRuntimePaths(root, layout)) {
        const file = path.join(root, rel);
        try {
          const st = statSync(file);
          const id: FileIdentity = {
            dev: st.dev,
            ino: st.ino,
            size: st.size,
            mtimeMs: st.mtimeMs,
            ctimeMs: st.ctimeMs,
          };
          const known = cache.get(rel);
          const fresh = known && sameIdentity(known, id) ? { sha256: known.sha256, size: known.size } : hash(file);
          next.set(rel, { ...id, sha256: fresh.sha256 });
          files.push({ path: rel, ...fresh });
        } catch {
          // gone between listing and reading: absent from the list, so the hash differs anyway
        }
      }
      cache = next;
      return runtimeHashOf(files);
    },
  };
}
export type RuntimeHasher = ReturnType<typeof createRuntimeHasher>;
