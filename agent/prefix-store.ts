import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  existsSync,
} from 'node:fs';
import path from 'node:path';

/**
 * Every file the agent writes goes through this store: paths are confined to the install prefix,
 * directories are 0700, files 0600, and writes are atomic (temp file, fsync, rename), so a crash
 * leaves either the old or the new content, never half of one.
 */
export type PrefixStore = ReturnType<typeof createPrefixStore>;

export function createPrefixStore(prefix: string) {
  const root = path.resolve(prefix);

  function resolve(name: string): string {
    const full = path.resolve(root, name);
    if (full !== root && !full.startsWith(root + path.sep))
      throw new Error(`refusing to touch ${name}: outside the agent prefix`);
    return full;
  }

  function ensureDir(dir: string): void {
    mkdirSync(resolve(dir), { recursive: true, mode: 0o700 });
  }

  return {
    root,
    resolve,
    ensureDir,
    exists(name: string): boolean {
      return existsSync(resolve(name));
    },
    readText(name: string): string | null {
      try {
        return readFileSync(resolve(name), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },
    readJson(name: string): unknown {
      const text = this.readText(name);
      if (text === null) return null;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return undefined;
      }
    },
    writeText(name: string, text: string): void {
      const full = resolve(name);
      mkdirSync(path.dirname(full), { recursive: true, mode: 0o700 });
      const tmp = `${full}.tmp-${randomBytes(4).toString('hex')}`;
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, full);
    },
    writeJson(name: string, value: unknown): void {
      this.writeText(name, `${JSON.stringify(value, null, 2)}\n`);
    },
    remove(name: string): void {
      rmSync(resolve(name), { force: true });
    },
    mode(name: string): number | null {
      try {
        return statSync(resolve(name)).mode & 0o777;
      } catch {
        return null;
      }
    },
  };
}
