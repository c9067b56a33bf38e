import { h, type Child } from '../dom';
import type { AuditEvent, Names } from '../types';
import { code, time } from '../ui';

/**
 * How the console shows an audit row: people by name and email (the id on hover), subjects as
 * links to their pages, data as labelled fields with the raw JSON one click away, dates on one line.
 */

const SUBJECT_PAGES: Record<string, string> = {
  license: '#/licenses/',
  customer: '#/customers/',
  agent: '#/agents/',
};

/** The id's name when it has one, else the id; the id itself stays in the title. */
export function who(id: string, names: Names, kind?: string): HTMLElement {
  const n = names[id];
  const label = n ? n.name || n.email || id : id;
  const text = n?.email && n.name ? `${n.name} <${n.email}>` : label;
  return h('span', { class: 'who', title: kind ? `${kind} ${id}` : id }, n ? text : code(id));
}

export function actorCell(e: AuditEvent, names: Names): HTMLElement {
  return h('span', {}, who(e.actor.id, names, e.actor.kind), h('small', { class: 'block muted' }, e.actor.kind));
}

export function subjectCell(subject: { kind: string; id: string }, names: Names): HTMLElement {
  const page = SUBJECT_PAGES[subject.kind];
  const label = who(subject.id, names, subject.kind);
  return h(
    'span',
    {},
    page ? h('a', { href: page + encodeURIComponent(subject.id) }, label) : label,
    h('small', { class: 'block muted' }, subject.kind.replace(/_/g, ' ')),
  );
}

/** `license.trial_converted` → "license · trial converted". */
export function actionText(action: string): string {
  const [resource = '', verb = ''] = action.split('.');
  return `${resource.replace(/_/g, ' ')} · ${verb.replace(/_/g, ' ')}`;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

function value(v: unknown): Child {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return ISO.test(v) ? time(v) : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) return v.join(', ') || '—';
  return code(JSON.stringify(v));
}

/** `changedComponents` → "changed components". */
export function label(key: string): string {
  return key
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .replace(/_/g, ' ')
    .toLowerCase();
}

/** Data as labelled fields, and the exact JSON behind them in a disclosure. */
export function dataCell(data: Record<string, unknown>): Child {
  const entries = Object.entries(data);
  if (entries.length === 0) return '—';
  return h(
    'div',
    { class: 'data' },
    h('dl', { class: 'kv' }, ...entries.flatMap(([k, v]) => [h('dt', {}, label(k)), h('dd', {}, value(v))])),
    h('details', {}, h('summary', {}, 'JSON'), h('pre', { class: 'doc' }, JSON.stringify(data, null, 2))),
  );
}

export function whenCell(iso: string): HTMLElement {
  return h('time', { class: 'nowrap', datetime: iso, title: iso }, time(iso));
}

export const auditColumns = (names: Names) => [
  { label: '#', cell: (e: AuditEvent) => String(e.seq) },
  { label: 'When', cell: (e: AuditEvent) => whenCell(e.time) },
  { label: 'Who', cell: (e: AuditEvent) => actorCell(e, names) },
  { label: 'What', cell: (e: AuditEvent) => h('span', { class: 'nowrap', title: e.action }, actionText(e.action)) },
  { label: 'About', cell: (e: AuditEvent) => subjectCell(e.subject, names) },
  { label: 'Details', cell: (e: AuditEvent) => dataCell(e.data) },
];
