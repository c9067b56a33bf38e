import { AUDIT_ACTIONS } from '../../../protocol/audit-actions';
import { api, withQuery } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import { page } from '../shell';
import type { AuditEvent, AuditVerify, Page } from '../types';
import { ACTOR_KINDS } from '../types';
import { actionButton, code, errorLine, form, input, isoFromLocal, section, select, table, time } from '../ui';

const FILTERS = ['actorKind', 'actorId', 'action', 'subjectKind', 'subjectId', 'since', 'until'] as const;

function dataText(data: Record<string, unknown>): string {
  const s = JSON.stringify(data);
  return s === '{}' ? '' : s;
}

const SUBJECT_PAGES: Record<string, string> = { license: '#/licenses/', customer: '#/customers/' };

function subjectLink(subject: { kind: string; id: string }): HTMLElement {
  const page = SUBJECT_PAGES[subject.kind];
  return page ? h('a', { href: page + subject.id }, code(subject.id)) : code(subject.id);
}

/** #/audit: filters, cursor paging (newest first) and a full chain verification. */
export async function auditView(ctx: RouteContext): Promise<Node> {
  const q = Object.fromEntries(FILTERS.map((k) => [k, ctx.query.get(k) ?? ''])) as Record<
    (typeof FILTERS)[number],
    string
  >;
  const error = errorLine();
  const list = h('div');
  const rows: AuditEvent[] = [];
  const columns = [
    { label: '#', cell: (e: AuditEvent) => String(e.seq) },
    { label: 'Time', cell: (e: AuditEvent) => time(e.time) },
    { label: 'Actor', cell: (e: AuditEvent) => h('span', {}, e.actor.kind, ' ', code(e.actor.id)) },
    { label: 'Action', cell: (e: AuditEvent) => code(e.action) },
    { label: 'Subject', cell: (e: AuditEvent) => h('span', {}, e.subject.kind, ' ', subjectLink(e.subject)) },
    { label: 'Data', cell: (e: AuditEvent) => h('code', { class: 'clip', title: dataText(e.data) }, dataText(e.data)) },
  ];
  async function loadPage(cursor?: string): Promise<void> {
    const res = await api<Page<AuditEvent>>(
      'GET',
      withQuery('/v1/admin/audit', {
        ...q,
        since: isoFromLocal(q.since),
        until: isoFromLocal(q.until),
        cursor,
        limit: 50,
      }),
    );
    rows.push(...res.items);
    const next = res.nextCursor;
    list.replaceChildren(
      table(columns, rows, 'No audit events match.', 'Audit events'),
      next ? actionButton('Older events', error, () => loadPage(next), { class: 'secondary' }) : '',
    );
  }
  await loadPage();

  const filters = form(
    {
      submit: 'Filter',
      class: 'form inline',
      label: 'Filter audit events',
      action: async (v) => ctx.go(withQuery('#/audit', Object.fromEntries(FILTERS.map((k) => [k, v[k]])))),
    },
    select('Actor kind', 'actorKind', [['', 'Any'], ...ACTOR_KINDS.map((k): [string, string] => [k, k])], q.actorKind),
    input('Actor id', { name: 'actorId', value: q.actorId, maxlength: 200 }),
    select('Action', 'action', [['', 'Any'], ...AUDIT_ACTIONS.map((a): [string, string] => [a, a])], q.action),
    input('Subject kind', { name: 'subjectKind', value: q.subjectKind, maxlength: 50, placeholder: 'license' }),
    input('Subject id', { name: 'subjectId', value: q.subjectId, maxlength: 200 }),
    input('Since', { name: 'since', type: 'datetime-local', value: q.since }),
    input('Until', { name: 'until', type: 'datetime-local', value: q.until }),
  );

  return page('Audit log', verifySection(), filters, list, error);
}

function verifySection(): HTMLElement {
  const result = h('div', { 'data-testid': 'audit-verify', 'aria-live': 'polite' });
  const error = errorLine();
  const button = actionButton('Verify chain', error, async () => {
    result.replaceChildren(h('p', {}, 'Walking the chain…'));
    const v = await api<AuditVerify>('GET', '/v1/admin/audit/verify');
    const latest = v.checkpoints.latest;
    result.replaceChildren(
      h(
        'p',
        { class: v.ok ? 'ok' : 'bad' },
        v.ok
          ? `Chain intact: ${v.events} events (#${v.checkedFrom}–#${v.checkedThrough}).`
          : `Chain broken at #${v.firstBreak?.seq ?? '?'}: ${v.firstBreak?.message ?? v.firstBreak?.code ?? 'unknown'}.`,
      ),
      h(
        'p',
        { class: 'hint' },
        `Signed checkpoints: ${v.checkpoints.valid} of ${v.checkpoints.total} valid${latest ? `; latest at #${latest.sequence}, ${time(latest.time)} (key ${latest.kid})` : ''}. Events after the last checkpoint: ${v.unsignedTail}.`,
      ),
    );
  });
  return section(
    'Integrity',
    h('p', { class: 'hint' }, 'Re-walks the hash chain on the server and checks every signed checkpoint.'),
    button,
    result,
    error,
  );
}
