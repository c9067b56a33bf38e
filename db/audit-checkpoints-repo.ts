import type { ChainCheckpoint, CheckpointStatement, Signature } from '../protocol';
import type { Queryable, Tx } from './pool';

/** audit_checkpoints: append-only, one signed statement about the chain head per row. */

type CheckpointRow = {
  id: string;
  sequence: string;
  hash: string;
  time: Date;
  alg: 'Ed25519';
  kid: string;
  sig: string;
};

function toCheckpoint(r: CheckpointRow): ChainCheckpoint {
  return {
    id: Number(r.id),
    statement: { sequence: Number(r.sequence), hash: r.hash, time: r.time.toISOString() },
    signature: { alg: r.alg, kid: r.kid, sig: r.sig },
  };
}

export type InsertCheckpointResult = { checkpoint: ChainCheckpoint; inserted: boolean };

/** Stores a signed checkpoint once per idempotency key; a retry returns the stored one. */
export async function insertCheckpoint(
  tx: Tx,
  statement: CheckpointStatement,
  signature: Signature,
  idempotencyKey: string,
): Promise<InsertCheckpointResult> {
  const { rows } = await tx.query<CheckpointRow>(
    `INSERT INTO audit_checkpoints (sequence, hash, time, alg, kid, sig, idempotency_key)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (idempotency_key) DO NOTHING
     RETURNING id, sequence, hash, time, alg, kid, sig`,
    [statement.sequence, statement.hash, statement.time, signature.alg, signature.kid, signature.sig, idempotencyKey],
  );
  if (rows[0]) return { checkpoint: toCheckpoint(rows[0]), inserted: true };
  const existing = await findCheckpointByKey(tx, idempotencyKey);
  if (!existing) throw new Error('checkpoint insert conflicted but no checkpoint holds its idempotency key');
  return { checkpoint: existing, inserted: false };
}

export async function findCheckpointByKey(db: Queryable, idempotencyKey: string): Promise<ChainCheckpoint | undefined> {
  const { rows } = await db.query<CheckpointRow>(
    'SELECT id, sequence, hash, time, alg, kid, sig FROM audit_checkpoints WHERE idempotency_key = $1',
    [idempotencyKey],
  );
  return rows[0] ? toCheckpoint(rows[0]) : undefined;
}

/** Every checkpoint, oldest first: a few per hour, so verification holds them all in memory. */
export async function listCheckpoints(db: Queryable): Promise<ChainCheckpoint[]> {
  const { rows } = await db.query<CheckpointRow>(
    'SELECT id, sequence, hash, time, alg, kid, sig FROM audit_checkpoints ORDER BY id',
  );
  return rows.map(toCheckpoint);
}

export async function latestCheckpoint(db: Queryable): Promise<ChainCheckpoint | undefined> {
  const { rows } = await db.query<CheckpointRow>(
    'SELECT id, sequence, hash, time, alg, kid, sig FROM audit_checkpoints ORDER BY id DESC LIMIT 1',
  );
  return rows[0] ? toCheckpoint(rows[0]) : undefined;
}
