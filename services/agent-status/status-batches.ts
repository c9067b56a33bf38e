import { MAX_BATCH_SIZE, signBatch, type BatchableSignature, type Signer } from '../../protocol';

/**
 * Collects the documents asked to be signed during one turn of the event loop and signs them
 * with one batch signature (protocol/batch-signature.ts) once that turn's callbacks have run. A
 * license change wakes all of its parked agents in the same turn (their rows come from one
 * batched read), so the change costs one signature however many agents hear of it.
 */
export function createBatchSigner(signer: Signer) {
  let pending: Array<{ doc: unknown; resolve(s: BatchableSignature): void; reject(e: unknown): void }> = [];
  let batches = 0;
  let signed = 0;

  function flush(): void {
    const all = pending;
    pending = [];
    for (let at = 0; at < all.length; at += MAX_BATCH_SIZE) {
      const part = all.slice(at, at + MAX_BATCH_SIZE);
      try {
        const signatures = signBatch(
          signer,
          part.map((p) => p.doc),
        );
        batches++;
        signed += part.length;
        part.forEach((p, i) => p.resolve(signatures[i]!));
      } catch (err) {
        for (const p of part) p.reject(err);
      }
    }
  }

  return {
    /** `doc`'s signature, shared with whatever else is signed in this turn. */
    sign(doc: unknown): Promise<BatchableSignature> {
      return new Promise((resolve, reject) => {
        if (pending.length === 0) setImmediate(flush);
        pending.push({ doc, resolve, reject });
      });
    },
    /** Signatures made, and documents they covered, since start. */
    stats: () => ({ batches, signed }),
  };
}
export type BatchSigner = ReturnType<typeof createBatchSigner>;
