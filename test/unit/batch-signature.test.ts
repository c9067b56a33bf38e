import { createHash } from 'node:crypto';
import {
  batchableSignatureSchema,
  createKeySet,
  createSigner,
  generateKeyFile,
  rootFromPath,
  signBatch,
  signedStatusSchema,
  verifyBatchableSignature,
  verifySignature,
  type BatchableSignature,
} from '../../protocol';
import { canonicalBytes } from '../../protocol/canonical-json';

const key = generateKeyFile('status-a');
const signer = createSigner(key);
const keys = createKeySet([key]);
const doc = (i: number) => ({ kind: 'agentina.status/v1', agentId: `agt_${String(i).padStart(22, '0')}`, good: false });

/** RFC 9162 §2.1.1's Merkle Tree Hash, written from its recursive definition (not from the signer's code). */
function mth(docs: unknown[]): Buffer {
  const h = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
  if (docs.length === 1) return h(Buffer.from([0]), Buffer.from(canonicalBytes(docs[0])));
  let k = 1;
  while (k * 2 < docs.length) k *= 2;
  return h(Buffer.from([1]), mth(docs.slice(0, k)), mth(docs.slice(k)));
}

describe('batch signatures (RFC 9162 inclusion paths under one Ed25519 signature)', () => {
  it('signs a single document alone, with a plain signature', () => {
    const [s] = signBatch(signer, [doc(0)]);
    expect(s!.batch).toBeUndefined();
    expect(verifySignature(doc(0), s!, keys)).toEqual({ ok: true });
  });

  it.each([2, 3, 5, 7, 8, 9, 16, 17, 100, 1000])(
    'every one of %i documents verifies alone, against the RFC 9162 root, under one signature',
    (n) => {
      const docs = Array.from({ length: n }, (_, i) => doc(i));
      const sigs = signBatch(signer, docs);
      expect(new Set(sigs.map((s) => s.sig)).size).toBe(1);
      const root = mth(docs);
      sigs.forEach((s, i) => {
        expect(batchableSignatureSchema.safeParse(s).success).toBe(true);
        expect(verifyBatchableSignature(docs[i], s, keys)).toEqual({ ok: true });
        const path = s.batch!.path.map((p) => Buffer.from(p, 'base64url'));
        expect(rootFromPath(mth([docs[i]]), i, n, path)?.equals(root)).toBe(true);
      });
      expect(
        verifySignature({ kind: 'agentina.signature-batch/v1', root: root.toString('hex'), size: n }, sigs[0]!, keys),
      ).toEqual({
        ok: true,
      });
    },
  );

  describe('an agent holding its own batch-signed answer, or several, cannot forge another', () => {
    const docs = Array.from({ length: 13 }, (_, i) => doc(i));
    const sigs = signBatch(signer, docs);
    const mine = sigs[4]!;
    const with_ = (over: Partial<NonNullable<BatchableSignature['batch']>>): BatchableSignature => ({
      ...mine,
      batch: { ...mine.batch!, ...over },
    });

    it('an edited document fails', () => {
      expect(verifyBatchableSignature({ ...docs[4], good: true }, mine, keys)).toEqual({
        ok: false,
        code: 'BAD_SIGNATURE',
      });
    });
    it("another agent's signature on my document fails, and mine on theirs", () => {
      expect(verifyBatchableSignature(docs[4], sigs[5]!, keys).ok).toBe(false);
      expect(verifyBatchableSignature(docs[5], mine, keys).ok).toBe(false);
    });
    it('a lie about the index or the size fails', () => {
      for (const index of [0, 3, 5, 12])
        expect(verifyBatchableSignature(docs[4], with_({ index }), keys).ok).toBe(false);
      for (const size of [2, 8, 12, 14, 16, 64])
        expect(verifyBatchableSignature(docs[4], with_({ size }), keys).ok).toBe(false);
      expect(verifyBatchableSignature(docs[4], with_({ index: 13 }), keys).ok).toBe(false);
    });
    it('a path cut short, lengthened or reordered fails', () => {
      const path = mine.batch!.path;
      expect(verifyBatchableSignature(docs[4], with_({ path: path.slice(1) }), keys).ok).toBe(false);
      expect(verifyBatchableSignature(docs[4], with_({ path: path.slice(0, -1) }), keys).ok).toBe(false);
      expect(verifyBatchableSignature(docs[4], with_({ path: [...path, path[0]!] }), keys).ok).toBe(false);
      expect(verifyBatchableSignature(docs[4], with_({ path: [...path].reverse() }), keys).ok).toBe(false);
    });
    it('an inner node passed off as a document of a smaller tree fails (the size is signed; leaves and nodes hash apart)', () => {
      const sixteen = Array.from({ length: 16 }, (_, i) => doc(i));
      const s = signBatch(signer, sixteen)[4]!;
      const path = s.batch!.path.map((p) => Buffer.from(p, 'base64url'));
      const node = createHash('sha256')
        .update(Buffer.from([1]))
        .update(mth([sixteen[4]]))
        .update(mth([sixteen[5]]))
        .digest();
      // The path arithmetic alone would take the node of leaves 4 and 5 as entry 2 of a tree of 8 ...
      expect(rootFromPath(node, 2, 8, path.slice(1))?.equals(mth(sixteen))).toBe(true);
      // ... but no document hashes to it as a leaf, and the signed statement names 16, not 8.
      const forged = { ...s, batch: { size: 8, index: 2, path: s.batch!.path.slice(1) } };
      expect(verifyBatchableSignature({ inner: node.toString('hex') }, forged, keys).ok).toBe(false);
      expect(verifyBatchableSignature(sixteen[4], forged, keys).ok).toBe(false);
    });
    it("the batch's own signature does not pass for a document's, nor a document's for a batch", () => {
      const { batch: _, ...bare } = mine;
      expect(verifySignature(docs[4], bare, keys)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
      const alone = signer.sign(docs[4]);
      expect(verifyBatchableSignature(docs[4], { ...alone, batch: mine.batch }, keys).ok).toBe(false);
    });
    it('a batch signature made by a key outside the set fails', () => {
      const stranger = signBatch(createSigner(generateKeyFile('status-a')), docs)[4]!;
      expect(verifyBatchableSignature(docs[4], stranger, keys)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
    });
    it.each([
      ['a size of 1', { size: 1 }],
      ['an index past the size', { index: 70_000 }],
      ['a hash of the wrong length', { path: ['AAAA'] }],
      ['a path longer than any batch has', { path: Array(17).fill(mine.batch!.path[0]) }],
    ])('is malformed with %s', (_n, over) => {
      expect(verifyBatchableSignature(docs[4], with_(over as never), keys)).toEqual({ ok: false, code: 'MALFORMED' });
    });
    it('is refused by the wire schema with an unknown field, and where only plain signatures belong', () => {
      expect(batchableSignatureSchema.safeParse({ ...mine, batch: { ...mine.batch, root: 'x' } }).success).toBe(false);
      expect(batchableSignatureSchema.safeParse({ ...mine, extra: 1 }).success).toBe(false);
      expect(signedStatusSchema.shape.signature.safeParse(mine).success).toBe(true);
    });
  });
});
