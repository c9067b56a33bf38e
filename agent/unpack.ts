import { chmodSync, closeSync, createReadStream, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { parseTarHeader, TarError, tarPadding } from '../protocol/tar';

export type UnpackLimits = {
  /** Most bytes the archive may unpack to (headers and bodies). */
  maxBytes: number;
  maxEntries: number;
  /** Why an entry's path is refused, or null to write it. */
  refuse: (entryPath: string) => string | null;
};

/**
 * Unpacks a release tarball from `file` into the (fresh) directory `dest` as a stream: a chunk of
 * the gzip is inflated, parsed and written before the next one is read, so the whole release
 * (with its 127 MB interpreter) is never held in memory. The same refusals as `unpackTarGz`
 * (protocol/tar): links, devices, unsafe or repeated paths, truncation, past `maxBytes`. Files
 * are written owner-only and get their read/execute bits once complete; the caller checks them
 * against the signed manifest before anything runs from `dest`.
 */
export async function unpackTarGzFile(file: string, dest: string, limits: UnpackLimits): Promise<number> {
  const seen = new Set<string>();
  let header = Buffer.alloc(0);
  let entry: { fd: number; file: string; mode: number; left: number; pad: number } | null = null;
  let total = 0;
  let ended = false;

  function begin(h: Buffer): void {
    const parsed = parseTarHeader(h);
    if (!parsed) {
      ended = true;
      return;
    }
    if (seen.size >= limits.maxEntries) throw new TarError('too many entries in tarball');
    if (seen.has(parsed.path)) throw new TarError(`repeated path in tarball: ${parsed.path}`);
    const why = limits.refuse(parsed.path);
    if (why) throw new TarError(why);
    seen.add(parsed.path);
    total += 512 + parsed.size;
    if (total > limits.maxBytes) throw new TarError('the tarball unpacks past its size limit');
    const target = path.join(dest, parsed.path);
    mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
    entry = {
      fd: openSync(target, 'wx', 0o600),
      file: target,
      mode: parsed.mode,
      left: parsed.size,
      pad: tarPadding(parsed.size),
    };
    if (parsed.size === 0) complete();
  }

  /** The entry's body is written: close it, give it its bits; its padding (if any) is skipped next. */
  function complete(): void {
    const e = entry!;
    closeSync(e.fd);
    e.fd = -1;
    chmodSync(e.file, e.mode & 0o500);
    if (e.pad === 0) entry = null;
  }

  function take(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !ended) {
      if (entry && entry.left > 0) {
        const n = Math.min(entry.left, chunk.length - off);
        writeSync(entry.fd, chunk, off, n);
        entry.left -= n;
        off += n;
        if (entry.left === 0) complete();
      } else if (entry) {
        const n = Math.min(entry.pad, chunk.length - off);
        entry.pad -= n;
        off += n;
        if (entry.pad === 0) entry = null;
      } else {
        const n = Math.min(512 - header.length, chunk.length - off);
        header = Buffer.concat([header, chunk.subarray(off, off + n)]);
        off += n;
        if (header.length === 512) {
          const h = header;
          header = Buffer.alloc(0);
          begin(h);
        }
      }
    }
  }

  const gunzip = createGunzip();
  const source = createReadStream(file, { highWaterMark: 64 * 1024 });
  source.on('error', (err) => gunzip.destroy(err));
  source.pipe(gunzip);
  try {
    for await (const chunk of gunzip) {
      take(chunk as Buffer);
      if (ended) break;
    }
  } catch (err) {
    if (err instanceof TarError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code.startsWith('Z_')) throw new TarError('the tarball is not gzip or is damaged');
    throw new TarError(`the release cannot be unpacked (${code || (err as Error).message})`);
  } finally {
    source.destroy();
    gunzip.destroy();
    const open = entry as { fd: number } | null;
    if (open && open.fd >= 0) closeSync(open.fd);
  }
  if (entry || header.length > 0) throw new TarError('truncated tarball');
  return seen.size;
}
