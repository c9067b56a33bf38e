import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalBytes } from './canonical-json';
import { safeString } from './input';
import { signatureSchema } from './schemas';
import { verifySignature, type KeySet, type Signature, type Signer, type VerifyResult } from './signer';

/**
 * Batch signatures: one Ed25519 signature covers many documents. The documents are the leaves of
 * a Merkle tree hashed as Certificate Transparency's (RFC 9162 §2.1.1: a leaf is
 * SHA-256(0x00 ‖ canonical JSON of the document), an inner node SHA-256(0x01 ‖ left ‖ right), the
 * tree split at the largest power of two below its size). The key signs the statement
 * `{"kind":"agentina.signature-batch/v1","root":<hex>,"size":n}` in canonical JSON, and each
 * document travels with its index and its inclusion path (RFC 9162 §2.1.3), so it is verified
 * alone: recompute the root from the document and the path, then check the one signature.
 *
 * Why: when a license is revoked, every agent parked on it must hear, each with an answer naming
 * it. Signing each answer costs about 50 µs of one core; 10,000 agents on one license wait half a
 * second for signatures alone. A batch costs one signature and about two hashes per answer.
 *
 * The statement's kind cannot be confused with a document's: every signed document is checked
 * against a strict schema whose `kind` differs, and a leaf's 0x00 prefix keeps a document from
 * passing as an inner node.
 */
export const SIGNATURE_BATCH_KIND = 'agentina.signature-batch/v1';
/** Larger batches are split: a path holds at most 16 hashes. */
export const MAX_BATCH_SIZE = 65_536;
const MAX_PATH = 16;

const hash32 = safeString(43).regex(/^[A-Za-z0-9_-]{43}$/, 'must be a SHA-256 hash in unpadded base64url');

/** A signature that may be a batch's: the batch part is absent for a document signed alone. */
export const batchableSignatureSchema = signatureSchema.extend({
  batch: z
    .strictObject({
      size: z.number().int().min(2).max(MAX_BATCH_SIZE),
      index: z
        .number()
        .int()
        .min(0)
        .max(MAX_BATCH_SIZE - 1),
      path: z.array(hash32).max(MAX_PATH),
    })
    .optional(),
});
export type BatchableSignature = Signature & { batch?: { size: number; index: number; path: string[] } };

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);
const leafHash = (doc: unknown): Buffer => createHash('sha256').update(LEAF).update(canonicalBytes(doc)).digest();
const nodeHash = (left: Buffer, right: Buffer): Buffer =>
  createHash('sha256').update(NODE).update(left).update(right).digest();

/** The largest power of two strictly below n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The root over leaves[lo, hi), appending each leaf's sibling hashes to its path, lowest first. */
function build(leaves: Buffer[], lo: number, hi: number, paths: Buffer[][]): Buffer {
  if (hi - lo === 1) return leaves[lo]!;
  const mid = lo + split(hi - lo);
  const left = build(leaves, lo, mid, paths);
  const right = build(leaves, mid, hi, paths);
  for (let i = lo; i < mid; i++) paths[i]!.push(right);
  for (let i = mid; i < hi; i++) paths[i]!.push(left);
  return nodeHash(left, right);
}

/** The statement the key signs for a batch. */
export function batchStatement(root: Buffer, size: number): { kind: string; root: string; size: number } {
  return { kind: SIGNATURE_BATCH_KIND, root: root.toString('hex'), size };
}

/**
 * Signs `docs` with one signature; a single document is signed alone (a plain signature).
 * Throws when there are more than MAX_BATCH_SIZE (the caller splits).
 */
export function signBatch(signer: Signer, docs: readonly unknown[]): BatchableSignature[] {
  if (docs.length === 0) return [];
  if (docs.length > MAX_BATCH_SIZE) throw new Error(`a batch holds at most ${MAX_BATCH_SIZE} documents`);
  if (docs.length === 1) return [signer.sign(docs[0])];
  const leaves = docs.map(leafHash);
  const paths = docs.map((): Buffer[] => []);
  const root = build(leaves, 0, leaves.length, paths);
  const signed = signer.sign(batchStatement(root, docs.length));
  return paths.map((path, index) => ({
    ...signed,
    batch: { size: docs.length, index, path: path.map((h) => h.toString('base64url')) },
  }));
}

/** RFC 9162 §2.1.3.2: the root an inclusion path leads to, or null when the path cannot be one. */
export function rootFromPath(leaf: Buffer, index: number, size: number, path: readonly Buffer[]): Buffer | null {
  if (!(index >= 0 && index < size)) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** Verifies a plain signature over `doc`, or a batch signature with `doc` at its index in the batch. */
export function verifyBatchableSignature(doc: unknown, signature: BatchableSignature, keys: KeySet): VerifyResult {
  const batch = signature?.batch;
  if (batch === undefined) return verifySignature(doc, signature, keys);
  const { batch: _, ...plain } = signature;
  const parsed = batchableSignatureSchema.safeParse(signature);
  if (!parsed.success) return { ok: false, code: 'MALFORMED' };
  let leaf: Buffer;
  try {
    leaf = leafHash(doc);
  } catch {
    return { ok: false, code: 'MALFORMED' };
  }
  const path = batch.path.map((h) => Buffer.from(h, 'base64url'));
  const root = rootFromPath(leaf, batch.index, batch.size, path);
  // A path that leads nowhere is a forged or damaged answer, like a signature that does not verify.
  if (!root) return { ok: false, code: 'BAD_SIGNATURE' };
  return verifySignature(batchStatement(root, batch.size), plain, keys);
}
