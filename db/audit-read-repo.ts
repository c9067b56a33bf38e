import type { ActorKind, ChainEvent } from '../protocol';
import type { Queryable } from './pool';

/** Reads of audit_events: the chain walk (verify, export) and the admin listing. */

type EventRow = {
  seq: string;
  time: Date;
  actor_kind: ActorKind;
  actor_id: string;
  action: string;
  subject_kind: string;
  subject_id: string;
  data: Record<string, unknown>;
  idempotency_key: string;
  prev_hash: string;
  hash: string;
};

const COLUMNS =
  'seq, time, actor_kind, actor_id, action, subject_kind, subject_id, data, idempotency_key, prev_hash, hash';

/** A row exactly as it is hashed (protocol/audit-chain.ts), plus its links. */
function toChainEvent(r: EventRow): ChainEvent {
  return {
    seq: Number(r.seq),
    time: r.time.toISOString(),
    actor: { kind: r.actor_kind, id: r.actor_id },
    action: r.action,
    subject: { kind: r.subject_kind, id: r.subject_id },
    data: r.data,
    idempotencyKey: r.idempotency_key,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** Up to `limit` rows with seq ≥ fromSeq, in chain order. */
export async function readChainFrom(db: Queryable, fromSeq: number, limit = 100_000): Promise<ChainEvent[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT ${COLUMNS} FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2`,
    [fromSeq, limit],
  );
  return rows.map(toChainEvent);
}

/** Streams the chain from `fromSeq` in batches (keyset pagination), so memory stays flat. */
export async function* walkChain(db: Queryable, fromSeq: number, batch = 5000): AsyncGenerator<ChainEvent[]> {
  let next = fromSeq;
  for (;;) {
    const rows = await readChainFrom(db, next, batch);
    if (rows.length === 0) return;
    yield rows;
    next = rows[rows.length - 1]!.seq + 1;
    if (rows.length < batch) return;
  }
}

/** The true head, read from the rows themselves (audit_head is only a cache for appenders). */
export async function readChainHead(db: Queryable): Promise<{ seq: number; hash: string } | undefined> {
  const { rows } = await db.query<{ seq: string; hash: string }>(
    'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1',
  );
  return rows[0] ? { seq: Number(rows[0].seq), hash: rows[0].hash } : undefined;
}

/** The first seq at or after `time`, for `audit export --since <time>`. */
export async function firstSeqAtOrAfter(db: Queryable, time: Date): Promise<number | undefined> {
  const { rows } = await db.query<{ seq: string | null }>('SELECT min(seq) AS seq FROM audit_events WHERE time >= $1', [
    time,
  ]);
  return rows[0]?.seq ? Number(rows[0].seq) : undefined;
}

export type AuditListFilter = {
  actorKind?: ActorKind;
  actorId?: string;
  action?: string;
  /** Any of these actions (the overview's notable events). */
  actions?: readonly string[];
  subjectKind?: string;
  subjectId?: string;
  /** Rows about this license, its agents and its activation tokens (a license's story). */
  licenseId?: string;
  since?: Date;
  until?: Date;
  /** Only rows with seq below this (the cursor: newest first). */
  beforeSeq?: number;
  limit: number;
};

// Each arm is an index scan on audit_events_subject; `?` is the license id, used three times.
const ABOUT_LICENSE = `((subject_kind = 'license' AND subject_id = ?)
  OR (subject_kind = 'agent' AND subject_id IN (SELECT id FROM agents WHERE license_id = ?))
  OR (subject_kind = 'activation_token' AND subject_id IN (SELECT id FROM activation_tokens WHERE license_id = ?)))`;

/** Newest first; the caller pages with beforeSeq = the last seq it saw. */
export async function listAuditEvents(db: Queryable, f: AuditListFilter): Promise<ChainEvent[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replaceAll('?', `$${params.length}`));
  };
  if (f.actorKind !== undefined) add('actor_kind = ?', f.actorKind);
  if (f.actorId !== undefined) add('actor_id = ?', f.actorId);
  if (f.action !== undefined) add('action = ?', f.action);
  if (f.actions !== undefined) add('action = ANY(?::text[])', f.actions);
  if (f.subjectKind !== undefined) add('subject_kind = ?', f.subjectKind);
  if (f.subjectId !== undefined) add('subject_id = ?', f.subjectId);
  if (f.licenseId !== undefined) add(ABOUT_LICENSE, f.licenseId);
  if (f.since !== undefined) add('time >= ?', f.since);
  if (f.until !== undefined) add('time < ?', f.until);
  if (f.beforeSeq !== undefined) add('seq < ?', f.beforeSeq);
  params.push(f.limit);
  const { rows } = await db.query<EventRow>(
    `SELECT ${COLUMNS} FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${params.length}`,
    params,
  );
  return rows.map(toChainEvent);
}
