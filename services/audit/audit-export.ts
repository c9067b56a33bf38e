import { eventToExportLine, type ChainEvent } from '../../protocol';
import type { NamesView } from '../../protocol/views';

/**
 * The console's audit downloads. JSONL: the event lines of `agentina audit export`, byte for byte,
 * in chain order. CSV (RFC 4180): one row per event, with the names behind the ids.
 */

export const AUDIT_EXPORT_MAX = 50_000;

export const AUDIT_CSV_COLUMNS = [
  'seq',
  'time',
  'actor_kind',
  'actor_id',
  'actor_name',
  'action',
  'subject_kind',
  'subject_id',
  'subject_name',
  'data',
  'idempotency_key',
  'prev_hash',
  'hash',
] as const;

/**
 * One CSV field. A value a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a
 * leading apostrophe: customer names and reasons are written by people the reader does not trust.
 */
export function csvField(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

function nameOf(names: NamesView, id: string): string {
  const n = names[id];
  if (!n) return '';
  return n.email && n.name ? `${n.name} <${n.email}>` : n.name || (n.email ?? '');
}

export function auditCsv(events: readonly ChainEvent[], names: NamesView): string {
  const rows = events.map((e) =>
    [
      String(e.seq),
      e.time,
      e.actor.kind,
      e.actor.id,
      nameOf(names, e.actor.id),
      e.action,
      e.subject.kind,
      e.subject.id,
      nameOf(names, e.subject.id),
      JSON.stringify(e.data),
      e.idempotencyKey,
      e.prevHash,
      e.hash,
    ]
      .map(csvField)
      .join(','),
  );
  return [AUDIT_CSV_COLUMNS.join(','), ...rows].map((r) => `${r}\r\n`).join('');
}

export function auditJsonl(events: readonly ChainEvent[]): string {
  return events.map((e) => `${eventToExportLine(e)}\n`).join('');
}
