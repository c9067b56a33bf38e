import type { Pool } from 'pg';
import { verifyLedger } from '../../db/audit-ledger';
import { listAuditEvents, type AuditListFilter } from '../../db/audit-read-repo';
import { readNames } from '../../db/names-repo';
import type { Queryable } from '../../db/pool';
import { AppError } from '../errors';
import type { KeyStore } from '../keys';
import { AUDIT_EXPORT_MAX, auditCsv, auditJsonl } from './audit-export';
import type { ChainEvent, ChainVerifyResult } from '../../protocol';
import type { NamesView } from '../../protocol/views';

export type AuditListQuery = Omit<AuditListFilter, 'beforeSeq' | 'limit' | 'since' | 'until' | 'actions'> & {
  since?: string;
  until?: string;
  cursor?: string;
  limit?: number;
};

/**
 * The names behind the actors and subjects of `events` (one query): the console shows people by
 * name and email, with the id one hover away.
 */
export async function namesOf(db: Queryable, events: readonly ChainEvent[]): Promise<NamesView> {
  const ids = new Set<string>();
  for (const e of events) {
    ids.add(e.actor.id);
    ids.add(e.subject.id);
  }
  const names: NamesView = {};
  for (const r of await readNames(db, [...ids])) names[r.id] = { name: r.name, email: r.email };
  return names;
}

export const AUDIT_PAGE_DEFAULT = 50;
const EXPORT_BATCH = 5000;

function toFilter(q: AuditListQuery, limit: number): AuditListFilter {
  const filter: AuditListFilter = { limit };
  if (q.actorKind !== undefined) filter.actorKind = q.actorKind;
  if (q.actorId !== undefined) filter.actorId = q.actorId;
  if (q.action !== undefined) filter.action = q.action;
  if (q.subjectKind !== undefined) filter.subjectKind = q.subjectKind;
  if (q.subjectId !== undefined) filter.subjectId = q.subjectId;
  if (q.licenseId !== undefined) filter.licenseId = q.licenseId;
  if (q.since !== undefined) filter.since = new Date(q.since);
  if (q.until !== undefined) filter.until = new Date(q.until);
  if (q.cursor !== undefined) filter.beforeSeq = Number(q.cursor);
  return filter;
}
export const AUDIT_PAGE_MAX = 200;

/** Reading and verifying the audit ledger for admins (and service accounts: auditor scripts). */
export function createAuditService(deps: { pool: Pool; keys: Pick<KeyStore, 'keySet'> }) {
  return {
    /** Newest first; `nextCursor` is the seq to pass back as `cursor` for the next (older) page. */
    async list(q: AuditListQuery): Promise<{ items: ChainEvent[]; nextCursor: string | null; names: NamesView }> {
      const limit = q.limit ?? AUDIT_PAGE_DEFAULT;
      const filter = toFilter(q, limit + 1);
      const rows = await listAuditEvents(deps.pool, filter);
      const items = rows.slice(0, limit);
      return {
        items,
        nextCursor: rows.length > limit ? String(items[items.length - 1]!.seq) : null,
        names: await namesOf(deps.pool, items),
      };
    },

    /**
     * Every event the filters match, in chain order, as CSV or as the event lines of `agentina
     * audit export`. Past AUDIT_EXPORT_MAX rows it refuses: narrow the filters, or export the
     * whole ledger with the CLI.
     */
    async export(q: Omit<AuditListQuery, 'cursor' | 'limit'>, format: 'csv' | 'jsonl'): Promise<string> {
      const events: ChainEvent[] = [];
      const filter = toFilter(q, EXPORT_BATCH);
      for (;;) {
        const batch = await listAuditEvents(deps.pool, filter);
        events.push(...batch);
        if (events.length > AUDIT_EXPORT_MAX)
          throw new AppError(
            'VALIDATION_FAILED',
            `More than ${AUDIT_EXPORT_MAX} events match: narrow the filters, or export the whole ledger with agentina audit export.`,
          );
        if (batch.length < EXPORT_BATCH) break;
        filter.beforeSeq = batch[batch.length - 1]!.seq;
      }
      events.reverse();
      return format === 'csv' ? auditCsv(events, await namesOf(deps.pool, events)) : auditJsonl(events);
    },

    /** Re-walks the chain and checks every checkpoint against the audit public key set on disk. */
    async verify(from?: number): Promise<ChainVerifyResult> {
      const keys = deps.keys.keySet('audit');
      return verifyLedger(deps.pool, keys, from === undefined ? {} : { from });
    },
  };
}
