import { AUDIT_ACTIONS } from '../../../protocol/audit-actions';
import { api, withQuery } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import { page } from '../shell';
import type { AuditEvent, AuditPage, AuditVerify, Names } from '../types';
import { ACTOR_KINDS } from '../types';
import { actionButton, errorLine, form, input, isoFromLocal, section, select, table, time } from '../ui';
import { auditColumns } from './audit-format';

const FILTERS = ['actorKind', 'actorId', 'action', 'subjectKind', 'subjectId', 'licenseId', 'since', 'until'] as const;
type Filters = Record<(typeof FILTERS)[number], string>;

const FILTER_LABELS: Filters = {
  actorKind: 'actor kind',
  actorId: 'actor',
  action: 'action',
  subjectKind: 'subject kind',
  subjectId: 'subject',
  licenseId: 'about license',
  since: 'since',
  until: 'until',
};

/** The filters as the API takes them (local date inputs as ISO 8601). */
function apiFilters(q: Filters): Record<string, string | undefined> {
  return { ...q, since: isoFromLocal(q.since), until: isoFromLocal(q.until) };
}

/** One removable chip per filter in force; each links to the same view without it. */
function filterChips(q: Filters): HTMLElement | string {
  const active = FILTERS.filter((k) => q[k]);
  if (active.length === 0) return '';
  return h(
    'ul',
    { class: 'chips', 'aria-label': 'Filters in force' },
    ...active.map((k) =>
      h(
        'li',
        {},
        h(
          'a',
          {
            class: 'chip',
            href: withQuery('#/audit', { ...q, [k]: '' }),
            'aria-label': `Remove filter ${FILTER_LABELS[k]}: ${q[k]}`,
          },
          `${FILTER_LABELS[k]}: ${q[k]} ✕`,
        ),
      ),
    ),
    active.length > 1 ? h('li', {}, h('a', { href: '#/audit' }, 'Clear all')) : '',
  );
}

function exportLinks(q: Filters): HTMLElement {
  const href = (format: string) => withQuery('/v1/admin/audit/export', { ...apiFilters(q), format });
  return h(
    'p',
    { class: 'export' },
    'Download what these filters match, oldest first: ',
    h('a', { href: href('csv'), download: '' }, 'CSV'),
    ' · ',
    h('a', { href: href('jsonl'), download: '' }, 'JSON lines'),
    h('small', { class: 'block hint' }, 'JSON lines are the event lines of agentina audit export.'),
  );
}

/** #/audit: filters as chips, cursor paging (newest first), downloads and a full chain verification. */
export async function auditView(ctx: RouteContext): Promise<Node> {
  const q = Object.fromEntries(FILTERS.map((k) => [k, ctx.query.get(k) ?? ''])) as Filters;
  const error = errorLine();
  const list = h('div');
  const rows: AuditEvent[] = [];
  const names: Names = {};
  const columns = auditColumns(names);
  async function loadPage(cursor?: string): Promise<void> {
    const res = await api<AuditPage>('GET', withQuery('/v1/admin/audit', { ...apiFilters(q), cursor, limit: 50 }));
    Object.assign(names, res.names);
    rows.push(...res.items);
    const next = res.nextCursor;
    list.replaceChildren(
      table(columns, rows, 'No audit events match these filters.', 'Audit events'),
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
    input('About license', { name: 'licenseId', value: q.licenseId, maxlength: 100, placeholder: 'lic_…' }),
    input('Since', { name: 'since', type: 'datetime-local', value: q.since }),
    input('Until', { name: 'until', type: 'datetime-local', value: q.until }),
  );

  return page('Audit log', verifySection(), filters, filterChips(q), exportLinks(q), list, error);
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
