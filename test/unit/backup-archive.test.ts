import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { ArchiveError, createDecryptStream, createEncryptStream, passphraseFrom } from '../../cli/backup-archive';

/** The lowest cost the reader accepts, so these tests stay fast; real archives use 2^17. */
const FAST = { N: 1 << 14, r: 8, p: 1 };
const pass = Buffer.from('correct horse battery staple');

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const seal = async (plain: Buffer): Promise<Buffer> =>
  collect(Readable.from([plain]).pipe(await createEncryptStream(pass, FAST)));
const open = (archive: Buffer, p = pass): Promise<Buffer> =>
  collect(Readable.from([archive.subarray(0, 7), archive.subarray(7)]).pipe(createDecryptStream(p)));

/** Offsets of each chunk frame after the two header lines. */
function frames(archive: Buffer): { start: number; end: number }[] {
  let at = archive.indexOf(0x0a, archive.indexOf(0x0a) + 1) + 1;
  const out: { start: number; end: number }[] = [];
  while (at < archive.length) {
    const end = at + 4 + archive.readUInt32BE(at) + 16;
    out.push({ start: at, end });
    at = end;
  }
  return out;
}

describe('backup archive envelope', () => {
  const plain = randomBytes(2.5 * (1 << 20)); // three chunks

  it('round-trips, empty payloads included', async () => {
    expect(await open(await seal(plain))).toEqual(plain);
    expect(await open(await seal(Buffer.alloc(0)))).toEqual(Buffer.alloc(0));
  });

  it('refuses a wrong passphrase before yielding a byte', async () => {
    await expect(open(await seal(plain), Buffer.from('correct horse battery stapler'))).rejects.toThrow(
      /does not open with this passphrase/,
    );
  });

  it('refuses an archive cut at a chunk boundary, chunks reordered or dropped, and bytes appended', async () => {
    const archive = await seal(plain);
    const f = frames(archive);
    expect(f).toHaveLength(3);
    const head = archive.subarray(0, f[0]!.start);
    const part = (i: number) => archive.subarray(f[i]!.start, f[i]!.end);
    // Cut after a whole (non-final) chunk: every byte authenticates, yet the end is missing.
    await expect(open(Buffer.concat([head, part(0), part(1)]))).rejects.toThrow(ArchiveError);
    await expect(open(Buffer.concat([head, part(1), part(0), part(2)]))).rejects.toThrow(/altered/);
    await expect(open(Buffer.concat([head, part(0), part(2)]))).rejects.toThrow(/altered/);
    await expect(open(Buffer.concat([archive, part(2)]))).rejects.toThrow(ArchiveError);
  });

  it('binds the header: a changed salt or nonce prefix does not open', async () => {
    const archive = await seal(plain);
    const text = archive.toString('latin1');
    const swapped = text.replace(/"noncePrefix":"([^"]+)"/, (_m, v: string) => {
      const b = Buffer.from(v, 'base64');
      b[0]! ^= 1;
      return `"noncePrefix":"${b.toString('base64')}"`;
    });
    await expect(open(Buffer.from(swapped, 'latin1'))).rejects.toThrow(ArchiveError);
  });

  it('refuses what is not an archive, and short passphrases', async () => {
    await expect(open(Buffer.from('PGDMP\n{}\n'))).rejects.toThrow(/not an Agentina backup archive/);
    expect(() => passphraseFrom(Buffer.from('short\n'))).toThrow(/at least 12/);
    expect(passphraseFrom(Buffer.from('a passphrase line\nsecond line ignored'))).toEqual(
      Buffer.from('a passphrase line'),
    );
  });
});
