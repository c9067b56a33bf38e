import { api, withQuery } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import type { Agent, AuditPage, UpdatePolicy } from '../types';
import { UPDATE_POLICY_MODES } from '../types';
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
  select,
  table,
  time,
} from '../ui';
import { auditColumns } from './audit-format';
import { statusFileForm } from '../offline-files';

const SOURCES: Record<UpdatePolicy['effective']['source'], string> = {
  agent: 'set on this agent',
  license: 'from its license',
  policy: 'from its license’s policy',
  default: 'the default',
};

/** The update policy in force, where it comes from, and the last update check the agent reported. */
function updateFacts(a: Agent, p: UpdatePolicy): Array<[string, HTMLElement]> {
  const e = p.effective;
  return [
    [
      'Update policy',
      h(
        'span',
        { 'data-testid': 'update-policy' },
        e.policy === 'pinned' ? `pinned to ${e.pinnedVersion ?? ''}` : e.policy,
        h('small', { class: 'block' }, SOURCES[e.source]),
      ),
    ],
    [
      'Update state',
      h(
        'span',
        { 'data-testid': 'update-state' },
        a.update
          ? h(
              'span',
              {},
              badge(a.update.outcome),
              a.update.reason ? ` ${a.update.reason}` : '',
              h('small', { class: 'block' }, `last check ${time(a.update.at)}`),
            )
          : 'no update check reported (it does not update itself, or has not checked yet)',
      ),
    ],
  ];
}

/** Sets this agent's own update policy (or back to inheriting its license's). */
function policyForm(base: string, p: UpdatePolicy, done: () => void): HTMLFormElement {
  return form(
    {
      submit: 'Set policy',
      label: 'Update policy',
      action: async (v) => {
        const policy = v.policy ?? 'inherit';
        await api('PUT', `${base}/update-policy`, {
          policy,
          ...(policy === 'pinned' ? { version: v.version ?? '' } : {}),
        });
        done();
      },
    },
    select(
      'Update policy of this agent',
      'policy',
      [['inherit', 'inherit (its license’s)'], ...UPDATE_POLICY_MODES.map((m): [string, string] => [m, m])],
      p.own?.policy ?? 'inherit',
    ),
    input('Pinned release (only with pinned)', {
      name: 'version',
      placeholder: '1.4.0',
      maxlength: 80,
      value: p.own?.pinnedVersion ?? '',
    }),
  );
}

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
  const [a, policy, history] = await Promise.all([
    api<Agent>('GET', base),
    api<UpdatePolicy>('GET', `${base}/update-policy`),
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
      h('span', { 'data-testid': 'wanted-version' }, a.wantedVersion ?? 'none asked (its update policy decides)'),
    ],
    ...updateFacts(a, policy),
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
          policyForm(base, policy, () => ctx.refresh()),
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
