import { randomUUID } from 'node:crypto';
import { auditHash, systemClock, type Actor, type AuditContent, type Clock, type Subject } from '../protocol';
import { isAuditAction, type AuditAction } from './audit-actions';
import type { Tx } from './pool';

export type AuditEventInput = {
  actor: Actor;
  action: AuditAction;
  subject: Subject;
  data?: Record<string, unknown>;
  /**
   * Makes the append idempotent: a second append with the same key writes nothing.
   * Activities pass `<workflowId>#<transition>`; API requests may leave it out.
   */
  idempotencyKey?: string;
};

export type AppendResult = { seq: number; hash: string; inserted: boolean };

/**
 * Appends one audit row inside the caller's transaction, so a change and its audit commit or roll
 * back together. The head row is locked FOR UPDATE until the caller commits: appends are
 * serialized and the chain cannot fork. Call it late in the transaction to keep that lock short.
 * `tx` must be a client inside BEGIN … COMMIT.
 */
export async function appendAudit(tx: Tx, event: AuditEventInput, clock: Clock = systemClock): Promise<AppendResult> {
  if (!isAuditAction(event.action)) throw new Error(`unknown audit action: ${String(event.action)}`);
  const idempotencyKey = event.idempotencyKey ?? `evt_${randomUUID()}`;
  if (event.idempotencyKey !== undefined) {
    // Cheap early exit for retried activities; the ON CONFLICT below is what guarantees it.
    const existing = await tx.query<{ seq: string; hash: string }>('SELECT seq, hash FROM audit_events WHERE idempotency_key = $1', [idempotencyKey]);
    if (existing.rows[0]) return { seq: Number(existing.rows[0].seq), hash: existing.rows[0].hash, inserted: false };
  }
  const head = await tx.query<{ seq: string; hash: string }>('SELECT seq, hash FROM audit_head FOR UPDATE');
  const prev = head.rows[0];
  if (!prev) throw new Error('audit_head is missing: the database was not migrated');
  const content: AuditContent = {
    seq: Number(prev.seq) + 1,
    time: clock.now().toISOString(),
    actor: { kind: event.actor.kind, id: event.actor.id },
    action: event.action,
    subject: { kind: event.subject.kind, id: event.subject.id },
    data: normaliseData(event.data ?? {}),
    idempotencyKey,
  };
  const hash = auditHash(prev.hash, content);
  const { rows } = await tx.query<{ seq: string }>(
    `WITH ins AS (
       INSERT INTO audit_events (seq, time, actor_kind, actor_id, action, subject_kind, subject_id, data, idempotency_key, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING seq, hash)
     UPDATE audit_head SET seq = ins.seq, hash = ins.hash FROM ins RETURNING audit_head.seq`,
    [content.seq, content.time, content.actor.kind, content.actor.id, content.action, content.subject.kind, content.subject.id, content.data, idempotencyKey, prev.hash, hash],
  );
  if (rows.length === 0) {
    const again = await tx.query<{ seq: string; hash: string }>('SELECT seq, hash FROM audit_events WHERE idempotency_key = $1', [idempotencyKey]);
    return { seq: Number(again.rows[0]!.seq), hash: again.rows[0]!.hash, inserted: false };
  }
  return { seq: content.seq, hash, inserted: true };
}

/**
 * The data object as it will read back from jsonb: a JSON round trip drops undefined fields and
 * turns Dates into strings, so the hash computed now equals the one recomputed on verification.
 */
function normaliseData(data: Record<string, unknown>): Record<string, unknown> {
  const text = JSON.stringify(data);
  if (text.length > 64 * 1024) throw new Error('audit data is larger than 64 KiB');
  if (text.includes('\\u0000')) throw new Error('audit data may not contain NUL characters');
  return JSON.parse(text) as Record<string, unknown>;
}
