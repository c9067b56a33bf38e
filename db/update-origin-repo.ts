import type { Tx } from './pool';

/**
 * Spends an origin proof's nonce inside the transition's transaction; false when it was spent
 * before (a replayed proof). Nonces older than `forgetBefore` are dropped first: a proof that old
 * is refused as expired anyway.
 */
export async function spendOriginNonce(
  tx: Tx,
  n: { nonce: string; workflowId: string; at: Date; forgetBefore: Date },
): Promise<boolean> {
  // SKIP LOCKED: concurrent transitions never wait on each other's pruning.
  await tx.query(
    `DELETE FROM update_origin_nonces WHERE nonce IN (
       SELECT nonce FROM update_origin_nonces WHERE used_at < $1 LIMIT 100 FOR UPDATE SKIP LOCKED)`,
    [n.forgetBefore],
  );
  const { rowCount } = await tx.query(
    'INSERT INTO update_origin_nonces (nonce, workflow_id, used_at) VALUES ($1, $2, $3) ON CONFLICT (nonce) DO NOTHING',
    [n.nonce, n.workflowId, n.at],
  );
  return rowCount === 1;
}
