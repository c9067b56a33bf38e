import { api, withQuery } from '../api';
import { h } from '../dom';
import type { Agent, AuditEvent, AuditPage, Names } from '../types';
import { actionButton, badge, code, errorLine, section, showError, table, time } from '../ui';
import { dataCell } from '../fields';
import { actionText, subjectCell, who, whenCell } from './audit-format';

/**
 * A license's story on its page: every audit row about it, its agents and its activation tokens,
 * newest first (transitions with who and why, terms changes, activations, quarantines and
 * releases), and where each of its agents stands now.
 */
export function storySection(licenseId: string): HTMLElement {
  const error = errorLine();
  const agents = h('div');
  const list = h('ol', { class: 'timeline', 'aria-label': 'License timeline' });
  const more = h('div');
  const names: Names = {};

  const item = (e: AuditEvent) =>
    h(
      'li',
      { 'data-action': e.action },
      h(
        'div',
        { class: 'timeline-head' },
        whenCell(e.time),
        h('strong', { title: e.action }, actionText(e.action)),
        h('span', {}, 'by ', who(e.actor.id, names, e.actor.kind)),
        e.subject.kind !== 'license' ? h('span', {}, 'about ', subjectCell(e.subject, names)) : '',
      ),
      dataCell(e.data),
    );

  async function loadEvents(cursor?: string): Promise<void> {
    const res = await api<AuditPage>('GET', withQuery('/v1/admin/audit', { licenseId, cursor, limit: 50 }));
    Object.assign(names, res.names);
    list.append(...res.items.map(item));
    if (!list.childElementCount) list.replaceWith(h('p', { class: 'empty' }, 'Nothing recorded about it yet.'));
    const next = res.nextCursor;
    more.replaceChildren(
      next ? actionButton('Older events', error, () => loadEvents(next), { class: 'secondary' }) : '',
    );
  }

  async function loadAgents(): Promise<void> {
    const res = await api<{ items: Agent[] }>('GET', withQuery('/v1/admin/agents', { licenseId, limit: 50 }));
    agents.replaceChildren(
      table(
        [
          { label: 'Agent', cell: (a: Agent) => h('a', { href: `#/agents/${a.id}` }, code(a.id)) },
          { label: 'Host', cell: (a: Agent) => a.hostnameHint ?? '—' },
          {
            label: 'Status',
            cell: (a: Agent) =>
              h('span', {}, badge(a.status), a.statusReason ? h('small', { class: 'block' }, a.statusReason) : ''),
          },
          { label: 'Last heartbeat', cell: (a: Agent) => h('span', { class: 'nowrap' }, time(a.lastHeartbeatAt)) },
          {
            label: 'Fingerprint',
            cell: (a: Agent) => (a.fingerprintScore === null ? '—' : `${a.fingerprintScore}/100`),
          },
        ],
        res.items,
        'No agent has activated with this license yet: issue an activation token below.',
        'Agents of this license',
      ),
    );
  }

  Promise.all([loadEvents(), loadAgents()]).catch((err: unknown) => showError(error, err));
  return section(
    'Story',
    h('h3', {}, 'Its agents now'),
    agents,
    h('h3', {}, 'What happened, newest first'),
    list,
    more,
    error,
  );
}
