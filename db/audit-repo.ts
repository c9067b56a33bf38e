import { randomUUID } from 'node:crypto';
import {
  ACTOR_KINDS,
  auditCanonicalParts,
  systemClock,
  type Actor,
  type AuditContent,
  type Clock,
  type Subject,
} from '../protocol';
import { isAuditAction, type AuditAction } from '../protocol/audit-actions';
import { deferCommitFlush, type Queryable, type Tx } from './pool';

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

/**
 * `staged`: the row will join the chain when the caller commits. false: a row with this
 * idempotency key is already in the chain, so nothing was staged (a retried activity).
 */
/** Writes a little WAL and commits synchronously: its flush covers the async audit COMMIT before it. */
export const AUDIT_COMMIT_FLUSH_SQL =
  'INSERT INTO audit_commit_flush (pid, n) VALUES (pg_backend_pid(), 1) ON CONFLICT (pid) DO UPDATE SET n = audit_commit_flush.n + 1';

export type AppendResult = { idempotencyKey: string; staged: boolean };

/**
 * Appends one audit row inside the caller's transaction, so a change and its audit commit or roll
 * back together. The row is staged now and chained at COMMIT by a deferred trigger
 * (db/migrations/0051_audit_chain_at_commit.sql), which locks the chain head, assigns the next
 * seq, computes the hash in SQL from the canonical JSON prepared here, and inserts into
 * audit_events. The head lock is held only while the caller commits, so appends are serialized
 * (no forks) without holding the lock across the caller's other work. Callers run at READ
 * COMMITTED (the default). `tx` must be a client inside BEGIN … COMMIT.
 */
export async function appendAudit(tx: Tx, event: AuditEventInput, clock: Clock = systemClock): Promise<AppendResult> {
  if (!isAuditAction(event.action)) throw new Error(`unknown audit action: ${String(event.action)}`);
  const idempotencyKey = event.idempotencyKey ?? `evt_${randomUUID()}`;
  // The table's CHECKs would only fire at COMMIT (when the row is chained): fail here instead.
  if (!(ACTOR_KINDS as readonly string[]).includes(event.actor.kind))
    throw new Error(`unknown audit actor kind: ${String(event.actor.kind)}`);
  checkLength('actor.id', event.actor.id, 200);
  checkLength('subject.kind', event.subject.kind, 50);
  checkLength('subject.id', event.subject.id, 200);
  checkLength('idempotencyKey', idempotencyKey, 300);
  const content: Omit<AuditContent, 'seq'> = {
    time: clock.now().toISOString(),
    actor: { kind: event.actor.kind, id: event.actor.id },
    action: event.action,
    subject: { kind: event.subject.kind, id: event.subject.id },
    data: normaliseData(event.data ?? {}),
    idempotencyKey,
  };
  const canon = auditCanonicalParts(content);
  // One round trip: nothing is staged when the key is already in the chain (a retried activity).
  // That is only the cheap path; the commit-time trigger's ON CONFLICT is the guarantee.
  // Inside withTransaction the chain lock is released before the commit's WAL flush, and
  // withTransaction waits for that flush before returning (db/pool.ts, migration 0053).
  const asyncCommit = deferCommitFlush(tx, AUDIT_COMMIT_FLUSH_SQL);
  const { rowCount } = await tx.query(
    `INSERT INTO audit_staging (time, actor_kind, actor_id, action, subject_kind, subject_id, data, idempotency_key, canon_before_seq, canon_after_seq, async_commit)
     SELECT $1::timestamptz, $2::text, $3::text, $4::text, $5::text, $6::text, $7::jsonb, $8::text, $9::text, $10::text, $11::boolean
      WHERE NOT EXISTS (SELECT 1 FROM audit_events WHERE idempotency_key = $8)`,
    [
      content.time,
      content.actor.kind,
      content.actor.id,
      content.action,
      content.subject.kind,
      content.subject.id,
      content.data,
      idempotencyKey,
      canon.before,
      canon.after,
      asyncCommit,
    ],
  );
  return { idempotencyKey, staged: rowCount === 1 };
}

function checkLength(field: string, value: string, max: number): void {
  if (typeof value !== 'string' || value.length < 1 || value.length > max)
    throw new Error(`audit ${field} must be 1-${max} characters`);
  // PostgreSQL would store a lone surrogate as U+FFFD, so the row would no longer match its hash.
  if (/\p{Surrogate}/u.test(value)) throw new Error(`audit ${field} is not well-formed Unicode`);
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

/** Whether an audit row with this idempotency key was committed (a retried step's first try). */
export async function auditKeyExists(db: Queryable, idempotencyKey: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM audit_events WHERE idempotency_key = $1', [idempotencyKey]);
  return (rowCount ?? 0) > 0;
}

export type ChainHead = { seq: number; hash: string; action: string; checkpointId: number | null };

/** The newest row of the chain itself (never the audit_head cache), or undefined when empty. */
export async function readChainHead(db: Queryable): Promise<ChainHead | undefined> {
  const { rows } = await db.query<{ seq: string; hash: string; action: string; checkpoint_id: string | null }>(
    "SELECT seq, hash, action, data->>'checkpointId' AS checkpoint_id FROM audit_events ORDER BY seq DESC LIMIT 1",
  );
  const r = rows[0];
  return (
    r && {
      seq: Number(r.seq),
      hash: r.hash,
      action: r.action,
      checkpointId: r.checkpoint_id === null ? null : Number(r.checkpoint_id),
    }
  );
}
