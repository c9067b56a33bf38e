import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * A minimal ustar writer and reader for release tarballs (regular files only, paths < 100 bytes):
 * the agent unpacks what it downloaded with this and nothing else, so every refusal lives here.
 */
export type TarEntry = { path: string; mode: number; body: Buffer };

export class TarError extends Error {}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

export function packTarGz(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const name = Buffer.from(e.path, 'utf8');
    if (name.length >= 100) throw new TarError(`path too long for the release tarball: ${e.path}`);
    const h = Buffer.alloc(512);
    name.copy(h, 0);
    h.write(octal(e.mode & 0o7777, 8), 100, 'ascii');
    h.write(octal(0, 8), 108, 'ascii');
    h.write(octal(0, 8), 116, 'ascii');
    h.write(octal(e.body.length, 12), 124, 'ascii');
    h.write(octal(0, 12), 136, 'ascii'); // mtime 0: the same files make the same tarball
    h.write('        ', 148, 'ascii');
    h.write('0', 156, 'ascii');
    h.write('ustar\u000000', 257, 'binary');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(octal(sum, 7), 148, 'ascii');
    blocks.push(h, e.body, Buffer.alloc(tarPadding(e.body.length)));
  }
  blocks.push(Buffer.alloc(1024));
  // Level 6: level 9 takes 4x as long on the 127 MB interpreter for 0.3 % less.
  return gzipSync(Buffer.concat(blocks), { level: 6 });
}

/** Bytes of padding after a body of `size` bytes (bodies fill whole 512-byte blocks). */
export function tarPadding(size: number): number {
  return (512 - (size % 512)) % 512;
}

/**
 * One 512-byte header: null at the end-of-archive block; refuses a bad checksum, anything but a
 * regular file, and absolute, `..`, empty-segment or control-character paths.
 */
export function parseTarHeader(h: Buffer): { path: string; mode: number; size: number } | null {
  if (h.every((b) => b === 0)) return null;
  const field = (a: number, n: number) =>
    h
      .subarray(a, a + n)
      .toString('latin1')
      .replace(/\0.*$/s, '')
      .trim();
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  if (parseInt(field(148, 8), 8) !== sum) throw new TarError('tar header checksum mismatch');
  const type = field(156, 1) || '0';
  const path = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
  const size = parseInt(field(124, 12) || '0', 8);
  if (!Number.isSafeInteger(size) || size < 0) throw new TarError('bad tar entry size');
  if (type !== '0') throw new TarError(`tar entry ${JSON.stringify(path)} is not a regular file`);
  if (
    !path ||
    path.startsWith('/') ||
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f\\]/.test(path) ||
    path.split('/').some((s) => s === '' || s === '.' || s === '..')
  )
    throw new TarError(`unsafe path in tarball: ${JSON.stringify(path.slice(0, 100))}`);
  return { path, mode: parseInt(field(100, 8), 8) & 0o755, size };
}

/** Unpacks regular files; refuses links, devices, absolute or `..` paths and anything past `maxBytes`. */
export function unpackTarGz(gz: Buffer, limits: { maxBytes: number; maxEntries: number }): TarEntry[] {
  let tar: Buffer;
  try {
    tar = gunzipSync(gz, { maxOutputLength: limits.maxBytes });
  } catch {
    throw new TarError('the tarball is not gzip or unpacks past its size limit');
  }
  const out: TarEntry[] = [];
  let off = 0;
  while (off + 512 <= tar.length) {
    const h = parseTarHeader(tar.subarray(off, off + 512));
    if (!h) break;
    if (off + 512 + h.size > tar.length) throw new TarError('truncated tarball');
    if (out.length >= limits.maxEntries) throw new TarError('too many entries in tarball');
    if (out.some((e) => e.path === h.path)) throw new TarError(`repeated path in tarball: ${h.path}`);
    out.push({ path: h.path, mode: h.mode, body: Buffer.from(tar.subarray(off + 512, off + 512 + h.size)) });
    off += 512 + h.size + tarPadding(h.size);
  }
  return out;
}
