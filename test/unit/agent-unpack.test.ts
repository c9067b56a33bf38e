import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { unpackTarGzFile } from '../../agent/unpack';
import { packTarGz, TarError, type TarEntry } from '../../protocol/tar';

/**
 * The updater's streaming unpack, fed what an attacker who controls the bytes (but not the
 * signature the files are checked against afterwards) would send: it must refuse every shape the
 * in-memory reader refuses, write nothing outside the staging directory, and stop at its limits.
 */
let work: string;
beforeEach(() => {
  work = mkdtempSync(path.join(tmpdir(), 'agent-unpack-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

const refuseOutside = (p: string) => (p.startsWith('runtime/') || p === 'agent-release.json' ? null : `outside: ${p}`);

async function unpack(gz: Buffer, limits: Partial<Parameters<typeof unpackTarGzFile>[2]> = {}) {
  const file = path.join(work, 'release.tar.gz');
  writeFileSync(file, gz);
  const dest = path.join(work, 'staging');
  rmSync(dest, { recursive: true, force: true });
  const n = await unpackTarGzFile(file, dest, {
    maxBytes: 1024 * 1024,
    maxEntries: 100,
    refuse: refuseOutside,
    ...limits,
  });
  return { n, dest };
}

/** The tarball with the header of entry `index` changed by `change` (its checksum recomputed). */
function patched(entries: TarEntry[], index: number, change: (h: Buffer) => void): Buffer {
  const tar = gunzipSync(packTarGz(entries));
  let off = 0;
  for (let i = 0; i < index; i++) off += 512 + Math.ceil(entries[i]!.body.length / 512) * 512;
  const h = tar.subarray(off, off + 512);
  change(h);
  h.write('        ', 148, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0`, 148, 'ascii');
  return gzipSync(tar);
}

const file = (p: string, body: string | Buffer, mode = 0o755): TarEntry => ({
  path: p,
  mode,
  body: typeof body === 'string' ? Buffer.from(body) : body,
});

it('writes every file with its bytes and owner-only read/execute bits, across chunk boundaries', async () => {
  const big = Buffer.alloc(300_000, 7); // spans many inflate chunks, and its padding
  const { n, dest } = await unpack(
    packTarGz([
      file('runtime/agentina-agent.js', 'console.log(1)\n'),
      file('runtime/bin/node', big),
      file('runtime/empty', ''),
      file('agent-release.json', '{}', 0o644),
    ]),
  );
  expect(n).toBe(4);
  expect(readFileSync(path.join(dest, 'runtime/bin/node')).equals(big)).toBe(true);
  expect(readFileSync(path.join(dest, 'runtime/agentina-agent.js'), 'utf8')).toBe('console.log(1)\n');
  expect(statSync(path.join(dest, 'runtime/bin/node')).mode & 0o777).toBe(0o500);
  expect(statSync(path.join(dest, 'agent-release.json')).mode & 0o777).toBe(0o400);
  expect(statSync(path.join(dest, 'runtime/empty')).size).toBe(0);
});

it.each([
  ['a symlink', (h: Buffer) => h.write('2', 156, 'ascii'), /not a regular file/],
  ['a hard link', (h: Buffer) => h.write('1', 156, 'ascii'), /not a regular file/],
  ['a directory entry', (h: Buffer) => h.write('5', 156, 'ascii'), /not a regular file/],
  ['a `..` path', (h: Buffer) => h.write('runtime/../../evil\0', 0, 'utf8'), /unsafe path/],
  ['an absolute path', (h: Buffer) => h.write('/tmp/evil\0', 0, 'utf8'), /unsafe path/],
])('refuses %s and writes nothing outside the staging directory', async (_what, change, message) => {
  const gz = patched([file('runtime/a.js', 'a'), file('runtime/b.js', 'b')], 1, change);
  await expect(unpack(gz)).rejects.toThrow(message);
  expect(readdirSync(work).sort()).toEqual(['release.tar.gz', 'staging']);
  expect(readdirSync(path.join(work, 'staging', 'runtime'))).toEqual(['a.js']);
});

it('refuses a header whose checksum does not match', async () => {
  const gz = gunzipSync(packTarGz([file('runtime/a.js', 'a')]));
  gz[10] = 0x41;
  await expect(unpack(gzipSync(gz))).rejects.toThrow(/checksum/);
});

it('refuses a file outside the runtime, a repeated path, and a file where a directory must be', async () => {
  await expect(unpack(packTarGz([file('etc/cron.d/evil', 'x')]))).rejects.toThrow('outside: etc/cron.d/evil');
  await expect(unpack(packTarGz([file('runtime/a.js', 'a'), file('runtime/a.js', 'b')]))).rejects.toThrow(
    /repeated path/,
  );
  await expect(unpack(packTarGz([file('runtime/a', 'a'), file('runtime/a/b', 'b')]))).rejects.toBeInstanceOf(TarError);
});

it('refuses what is not gzip, a truncated archive, and one that unpacks past its limits', async () => {
  await expect(unpack(Buffer.from('not a tarball at all'))).rejects.toThrow(/not gzip/);
  const tar = gunzipSync(packTarGz([file('runtime/a.js', Buffer.alloc(5000, 1))]));
  await expect(unpack(gzipSync(tar.subarray(0, 512 + 1000)))).rejects.toThrow(/truncated/);
  // A gzip bomb: 64 MiB of zeros in well under 1 MiB, against a 1 MiB limit.
  const bomb = packTarGz([file('runtime/bomb', Buffer.alloc(64 * 1024 * 1024))]);
  expect(bomb.length).toBeLessThan(1024 * 1024);
  await expect(unpack(bomb)).rejects.toThrow(/past its size limit/);
  const many = Array.from({ length: 101 }, (_, i) => file(`runtime/f${i}`, 'x'));
  await expect(unpack(packTarGz(many))).rejects.toThrow(/too many entries/);
});
