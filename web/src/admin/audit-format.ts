import { h } from '../dom';
import type { AuditEvent, Names } from '../types';
import { dataCell } from '../fields';
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
