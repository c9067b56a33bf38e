import { createCipheriv, createDecipheriv, createHash, randomBytes, scrypt as scryptCb } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';

/**
 * The backup archive's envelope: one header line naming the key derivation, then the payload in
 * AES-256-GCM chunks. Each chunk's nonce is a random prefix and the chunk's number, and its
 * associated data binds the header and whether it is the last chunk, so a chunk edited, reordered,
 * dropped, or cut off at the end is refused; so is a wrong passphrase (the first chunk fails).
 *
 *   AGENTINA-BACKUP/1\n{"kdf":{…},"cipher":"aes-256-gcm","noncePrefix":…,"chunkBytes":…}\n
 *   ( u32 ciphertext length ‖ ciphertext ‖ 16-byte tag )*   -- the last with the `final` flag
 */
export const ARCHIVE_MAGIC = 'AGENTINA-BACKUP/1';
const CHUNK_BYTES = 1 << 20;
const TAG_BYTES = 16;
/** scrypt N=2^17, r=8, p=1: 128 MiB and about half a second, once per backup or restore. */
const KDF_DEFAULT = { N: 1 << 17, r: 8, p: 1 };
/** A header may ask for at most this much work, so a forged archive cannot exhaust the restoring machine. */
const KDF_MAX_N = 1 << 20;
const MAX_HEADER_BYTES = 4096;

export type ArchiveHeader = {
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  noncePrefix: string;
  chunkBytes: number;
};

/** A refusal the operator must act on: wrong passphrase, an archive altered or cut short, not an archive. */
export class ArchiveError extends Error {}

const scrypt = promisify(scryptCb) as (
  pass: Buffer,
  salt: Buffer,
  len: number,
  opts: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

async function deriveKey(passphrase: Buffer, kdf: ArchiveHeader['kdf']): Promise<Buffer> {
  return scrypt(passphrase, Buffer.from(kdf.salt, 'base64'), 32, {
    N: kdf.N,
    r: kdf.r,
    p: kdf.p,
    maxmem: 256 * kdf.N * kdf.r + 1024 * 1024,
  });
}

function nonceFor(prefix: Buffer, index: number): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0, 0, 8);
  n.writeUInt32BE(index, 8);
  return n;
}

function aadFor(headerDigest: Buffer, final: boolean): Buffer {
  return Buffer.concat([headerDigest, Buffer.from([final ? 1 : 0])]);
}

/** A passphrase as read from a file or stdin: its first line, which must not be empty. */
export function passphraseFrom(text: Buffer): Buffer {
  const line = text.toString('utf8').split(/\r?\n/)[0] ?? '';
  if (line.length < 12) throw new ArchiveError('the passphrase must be at least 12 characters');
  return Buffer.from(line, 'utf8');
}

/** Encrypts whatever is written to it into the archive format. */
export async function createEncryptStream(
  passphrase: Buffer,
  kdfParams: { N: number; r: number; p: number } = KDF_DEFAULT,
): Promise<Transform> {
  const header: ArchiveHeader = {
    kdf: { name: 'scrypt', ...kdfParams, salt: randomBytes(16).toString('base64') },
    cipher: 'aes-256-gcm',
    noncePrefix: randomBytes(8).toString('base64'),
    chunkBytes: CHUNK_BYTES,
  };
  const headerLine = `${ARCHIVE_MAGIC}\n${JSON.stringify(header)}\n`;
  const digest = createHash('sha256').update(headerLine).digest();
  const key = await deriveKey(passphrase, header.kdf);
  const prefix = Buffer.from(header.noncePrefix, 'base64');
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let index = 0;
  const seal = (plain: Buffer, final: boolean): Buffer => {
    const c = createCipheriv('aes-256-gcm', key, nonceFor(prefix, index++));
    c.setAAD(aadFor(digest, final));
    const body = Buffer.concat([c.update(plain), c.final()]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length, 0);
    return Buffer.concat([len, body, c.getAuthTag()]);
  };
  let headerSent = false;
  const sendHeader = (t: Transform) => {
    if (!headerSent) t.push(Buffer.from(headerLine, 'utf8'));
    headerSent = true;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      sendHeader(this);
      pending.push(chunk);
      pendingBytes += chunk.length;
      // Keep at least one byte back, so the last chunk is always sealed as final in flush().
      while (pendingBytes > CHUNK_BYTES) {
        const all = Buffer.concat(pending);
        this.push(seal(all.subarray(0, CHUNK_BYTES), false));
        pending = [all.subarray(CHUNK_BYTES)];
        pendingBytes = all.length - CHUNK_BYTES;
      }
      done();
    },
    flush(done: TransformCallback) {
      sendHeader(this);
      this.push(seal(Buffer.concat(pending), true));
      done();
    },
  });
}

function parseHeader(json: string): ArchiveHeader {
  let h: ArchiveHeader;
  try {
    h = JSON.parse(json) as ArchiveHeader;
  } catch {
    throw new ArchiveError('not an Agentina backup archive (its header does not parse)');
  }
  const k = h?.kdf;
  const ok =
    h?.cipher === 'aes-256-gcm' &&
    k?.name === 'scrypt' &&
    Number.isInteger(k.N) &&
    k.N >= 1 << 14 &&
    k.N <= KDF_MAX_N &&
    (k.N & (k.N - 1)) === 0 &&
    Number.isInteger(k.r) &&
    k.r >= 1 &&
    k.r <= 16 &&
    Number.isInteger(k.p) &&
    k.p >= 1 &&
    k.p <= 4 &&
    typeof k.salt === 'string' &&
    Buffer.from(k.salt, 'base64').length >= 16 &&
    typeof h.noncePrefix === 'string' &&
    Buffer.from(h.noncePrefix, 'base64').length === 8 &&
    h.chunkBytes === CHUNK_BYTES;
  if (!ok) throw new ArchiveError('not an Agentina backup archive this version can read (unknown header)');
  return h;
}

/**
 * Decrypts an archive. Bytes are passed on only once their chunk has authenticated; an archive
 * that ends without its final chunk (cut short) fails at its end. Callers apply nothing for good
 * before the stream has ended without error.
 */
export function createDecryptStream(passphrase: Buffer): Transform {
  let buf = Buffer.alloc(0);
  let digest: Buffer | undefined;
  let key: Buffer | undefined;
  let prefix: Buffer | undefined;
  let index = 0;
  let finished = false;
  const wrong = () =>
    new ArchiveError(
      index === 0
        ? 'the archive does not open with this passphrase (wrong passphrase, or the archive was altered)'
        : `the archive was altered or damaged (chunk ${index} does not authenticate)`,
    );

  async function readHeader(): Promise<boolean> {
    const magicEnd = buf.indexOf(0x0a);
    const headerEnd = magicEnd < 0 ? -1 : buf.indexOf(0x0a, magicEnd + 1);
    if (headerEnd < 0) {
      if (buf.length > MAX_HEADER_BYTES) throw new ArchiveError('not an Agentina backup archive');
      return false;
    }
    if (buf.subarray(0, magicEnd).toString('utf8') !== ARCHIVE_MAGIC)
      throw new ArchiveError('not an Agentina backup archive (wrong magic)');
    const h = parseHeader(buf.subarray(magicEnd + 1, headerEnd).toString('utf8'));
    digest = createHash('sha256')
      .update(buf.subarray(0, headerEnd + 1))
      .digest();
    prefix = Buffer.from(h.noncePrefix, 'base64');
    key = await deriveKey(passphrase, h.kdf);
    buf = buf.subarray(headerEnd + 1);
    return true;
  }

  function openChunks(t: Transform, atEnd: boolean): void {
    for (;;) {
      if (buf.length < 4) break;
      const len = buf.readUInt32BE(0);
      if (len > CHUNK_BYTES + 64) throw wrong();
      if (buf.length < 4 + len + TAG_BYTES) break;
      if (finished) throw new ArchiveError('the archive has data after its final chunk (it was altered)');
      const body = buf.subarray(4, 4 + len);
      const tag = buf.subarray(4 + len, 4 + len + TAG_BYTES);
      // The last chunk is the one that ends the file.
      const final = atEnd && buf.length === 4 + len + TAG_BYTES;
      const d = createDecipheriv('aes-256-gcm', key!, nonceFor(prefix!, index));
      d.setAAD(aadFor(digest!, final));
      d.setAuthTag(tag);
      let plain: Buffer;
      try {
        plain = Buffer.concat([d.update(body), d.final()]);
      } catch {
        throw wrong();
      }
      index++;
      finished = final;
      buf = buf.subarray(4 + len + TAG_BYTES);
      t.push(plain);
    }
  }

  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      buf = Buffer.concat([buf, chunk]);
      void (async () => {
        if (!key && !(await readHeader())) return;
        // Hold back the last complete chunk until the end is known: it may be the final one.
        const keep = lastChunkStart(buf);
        if (keep > 0) {
          const tail = buf.subarray(keep);
          buf = buf.subarray(0, keep);
          openChunks(this, false);
          buf = Buffer.concat([buf, tail]);
        }
      })().then(() => done(), done);
    },
    flush(done: TransformCallback) {
      void (async () => {
        if (!key && !(await readHeader())) throw new ArchiveError('not an Agentina backup archive (too short)');
        openChunks(this, true);
        if (!finished || buf.length > 0)
          throw new ArchiveError('the archive is incomplete (it was cut short or altered)');
      })().then(() => done(), done);
    },
  });
}

/** Where the last complete frame in `buf` starts (0 if there is at most one complete frame). */
function lastChunkStart(buf: Buffer): number {
  let at = 0;
  let last = 0;
  while (buf.length - at >= 4) {
    const len = buf.readUInt32BE(at);
    if (len > CHUNK_BYTES + 64 || buf.length - at < 4 + len + TAG_BYTES) break;
    last = at;
    at += 4 + len + TAG_BYTES;
  }
  // Frames before `last` are complete and not the last one; an incomplete frame after `at` means
  // the frame at `last` is not the final either.
  return at < buf.length ? at : last;
}
