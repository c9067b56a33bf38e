import { api, withQuery } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import type { Agent, AuditPage } from '../types';
import {
  actionButton,
  badge,
  code,
  confirmedAction,
  dl,
  errorLine,
  form,
  input,
  link,
  section,
  table,
  time,
} from '../ui';
import { auditColumns } from './audit-format';
import { statusFileForm } from '../offline-files';

const DEREGISTER_WARNING = 'Its credential stops working and its seat is freed; this cannot be undone.';

/** What the agent said of itself at its last heartbeat, beside what the control plane decided. */
export function reportedVerdict(a: Agent): HTMLElement | string {
  if (a.reportedTerminalReason)
    return h(
      'span',
      { class: 'reported', 'data-testid': 'reported' },
      badge('terminal'),
      ' ',
      a.reportedTerminalReason,
      h('small', { class: 'block' }, `reported since ${time(a.reportedTerminalAt)}`),
    );
  return a.lastHeartbeatAt ? 'working (not terminal)' : 'no heartbeat yet';
}

/** #/agents/agt_…: the machine's story, its quarantines and releases, and what can be done to it. */
export async function agentView(ctx: RouteContext): Promise<Node> {
  const id = ctx.params[0] ?? '';
  const base = `/v1/admin/agents/${encodeURIComponent(id)}`;
  const [a, history] = await Promise.all([
    api<Agent>('GET', base),
    api<AuditPage>('GET', withQuery('/v1/admin/audit', { subjectKind: 'agent', subjectId: id, limit: 100 })),
  ]);
  const error = errorLine();
  const facts = dl([
    ['Host', a.hostnameHint ?? '—'],
    ['License', h('span', {}, link(`#/licenses/${a.licenseId}`, a.licenseId), ' ', badge(a.licenseState))],
    [
      'Control plane says',
      h(
        'span',
        { 'data-testid': 'agent-status' },
        badge(a.status),
        a.statusReason ? h('small', { class: 'block' }, a.statusReason) : '',
      ),
    ],
    ['Agent reports', reportedVerdict(a)],
    [
      'Fingerprint',
      a.fingerprintScore === null
        ? 'no heartbeat yet'
        : `${a.fingerprintScore}/100 · ${a.changedComponents.length ? `changed: ${a.changedComponents.join(', ')}` : 'no component changed'}`,
    ],
    ['Version', a.agentVersion ?? '—'],
    [
      'Wanted version',
      h(
        'span',
        { 'data-testid': 'wanted-version' },
        a.wantedVersion ?? 'none asked (its license’s update policy decides)',
      ),
    ],
    [
      'Runtime hash',
      a.runtimeHash
        ? h(
            'span',
            {},
            code(a.runtimeHash),
            h(
              'small',
              { class: 'block' },
              a.statusReason === 'integrity_mismatch'
                ? 'does not match the published release of this version'
                : 'matches the published release of this version (or none is published)',
            ),
          )
        : '—',
    ],
    [
      'Status version',
      h(
        'span',
        { 'data-testid': 'status-version' },
        `${a.statusVersion} here · ${a.acknowledgedStatusVersion === null ? 'none acknowledged yet' : `${a.acknowledgedStatusVersion} acknowledged by the agent`}`,
      ),
    ],
    ['Tasks in flight', h('span', {}, String(a.inFlightTasks), ' · ', link(`#/tasks?agentId=${a.id}`, 'Show tasks'))],
    ['Last heartbeat', time(a.lastHeartbeatAt)],
    ['Activated', time(a.createdAt)],
    ...(a.deregisteredAt ? [['Deregistered', time(a.deregisteredAt)] as [string, string]] : []),
  ]);
  const actions =
    a.status === 'deregistered'
      ? h('p', { class: 'hint' }, 'Deregistered: its credential no longer works and its seat is free.')
      : h(
          'div',
          { class: 'actions' },
          a.status === 'quarantined'
            ? actionButton('Release', error, async () => {
                await api('POST', `${base}/release`);
                ctx.refresh();
              })
            : '',
          form(
            {
              submit: 'Update',
              label: 'Update to…',
              action: async (values) => {
                await api('POST', `${base}/update`, { version: values.version ?? '' });
                ctx.refresh();
              },
            },
            input('Published release to install (never below the one it runs)', {
              name: 'version',
              required: true,
              placeholder: '1.4.0',
              maxlength: 80,
            }),
          ),
          statusFileForm(a.id),
          confirmedAction('Deregister', ['agent id', a.id], DEREGISTER_WARNING, `${base}/deregister`, () =>
            ctx.refresh(),
          ),
        );
  return h(
    'div',
    { class: 'page' },
    h('h1', {}, 'Agent ', code(a.id)),
    facts,
    section('Actions', actions, error),
    section(
      'History',
      h('p', { class: 'hint' }, 'Activation, quarantines and releases, mismatches, going offline and back.'),
      table(auditColumns(history.names), history.items, 'Nothing recorded about this agent yet.', 'Agent history'),
    ),
  );
}
