import type { Pool } from 'pg';
import { verifyLedger } from '../../db/audit-ledger';
import { listAuditEvents, type AuditListFilter } from '../../db/audit-read-repo';
import type { KeyStore } from '../keys';
import type { ChainEvent, ChainVerifyResult } from '../../protocol';

export type AuditListQuery = Omit<AuditListFilter, 'beforeSeq' | 'limit' | 'since' | 'until'> & {
  since?: string;
  until?: string;
  cursor?: string;
  limit?: number;
};

export const AUDIT_PAGE_DEFAULT = 50;
export const AUDIT_PAGE_MAX = 200;

/** Reading and verifying the audit ledger for admins (and service accounts: auditor scripts). */
export function createAuditService(deps: { pool: Pool; keys: Pick<KeyStore, 'keySet'> }) {
  return {
    /** Newest first; `nextCursor` is the seq to pass back as `cursor` for the next (older) page. */
    async list(q: AuditListQuery): Promise<{ items: ChainEvent[]; nextCursor: string | null }> {
      const limit = q.limit ?? AUDIT_PAGE_DEFAULT;
      const filter: AuditListFilter = { limit: limit + 1 };
      if (q.actorKind !== undefined) filter.actorKind = q.actorKind;
      if (q.actorId !== undefined) filter.actorId = q.actorId;
      if (q.action !== undefined) filter.action = q.action;
      if (q.subjectKind !== undefined) filter.subjectKind = q.subjectKind;
      if (q.subjectId !== undefined) filter.subjectId = q.subjectId;
      if (q.since !== undefined) filter.since = new Date(q.since);
      if (q.until !== undefined) filter.until = new Date(q.until);
      if (q.cursor !== undefined) filter.beforeSeq = Number(q.cursor);
      const rows = await listAuditEvents(deps.pool, filter);
      const items = rows.slice(0, limit);
      return { items, nextCursor: rows.length > limit ? String(items[items.length - 1]!.seq) : null };
    },

    /** Re-walks the chain and checks every checkpoint against the audit public key set on disk. */
    async verify(from?: number): Promise<ChainVerifyResult> {
      const keys = deps.keys.keySet('audit');
      return verifyLedger(deps.pool, keys, from === undefined ? {} : { from });
    },
  };
}
