import { api, withQuery } from './api';
import { offlineActivationSection } from './offline-files';
import { h } from './dom';
import type { RouteContext } from './shell';
import { page } from './shell';
import type { ActivationToken, Agent, IssuedToken, License, Page, Permission, Task } from './types';
import { AGENT_STATUSES, TASK_KINDS, TASK_STATES } from './types';
import { can } from './admin/access';
import {
  actionButton,
  badge,
  code,
  details,
  errorLine,
  form,
  input,
  link,
  secretOnce,
  section,
  select,
  table,
  textarea,
  time,
} from './ui';
import { jsonCell } from './fields';

/**
 * Views both surfaces have (agents, tasks, activation tokens); the API scopes them: an admin sees
 * everything, a customer only its own.
 */
export type Scope = 'admin' | 'portal';

function licenseOptions(licenses: License[]): Array<[string, string]> {
  return licenses.map((l): [string, string] => [l.id, `${l.id} · ${l.plan} · ${l.state}`]);
}

/** Customers may change their own; an admin as their role allows (admin/access.ts). */
function mayWrite(ctx: RouteContext, scope: Scope, permission: Permission): boolean {
  return scope === 'portal' || can(ctx.me, permission);
}

export async function agentsView(ctx: RouteContext, scope: Scope): Promise<Node> {
  const status = ctx.query.get('status') ?? '';
  const licenseId = ctx.query.get('licenseId') ?? '';
  const customerId = scope === 'admin' ? (ctx.query.get('customerId') ?? '') : '';
  const base = `/v1/${scope}/agents`;
  const error = errorLine();
  const list = h('div');
  const rows: Agent[] = [];
  const writes = mayWrite(ctx, scope, 'agents:write');
  const act = (a: Agent, action: 'release' | 'deregister', text: string) =>
    actionButton(
      text,
      error,
      async () => {
        if (
          action === 'deregister' &&
          !confirm(`Deregister ${a.id}? Its credential stops working and its seat is freed; this cannot be undone.`)
        )
          return;
        await api('POST', `${base}/${a.id}/${action}`);
        ctx.refresh();
      },
      { class: 'secondary small', 'aria-label': `${text} ${a.id}` },
    );
  const columns = [
    {
      label: 'Agent',
      cell: (a: Agent) =>
        h(
          'span',
          {},
          scope === 'admin' ? h('a', { href: `#/agents/${a.id}` }, code(a.id)) : code(a.id),
          a.hostnameHint ? h('small', { class: 'block' }, a.hostnameHint) : '',
        ),
    },
    {
      label: 'License',
      cell: (a: Agent) => (scope === 'admin' ? link(`#/licenses/${a.licenseId}`, a.licenseId) : a.licenseId),
    },
    {
      label: 'Status',
      cell: (a: Agent) =>
        h(
          'span',
          {},
          badge(a.status),
          a.statusReason ? h('small', { class: 'block' }, a.statusReason) : '',
          a.reportedTerminalReason
            ? h(
                'small',
                { class: 'block', 'data-testid': 'reported' },
                `agent reports terminal: ${a.reportedTerminalReason}`,
              )
            : '',
        ),
    },
    { label: 'License state', cell: (a: Agent) => badge(a.licenseState) },
    {
      label: 'Fingerprint score',
      cell: (a: Agent) =>
        a.fingerprintScore === null
          ? '—'
          : `${a.fingerprintScore}/100${a.changedComponents.length ? ` (changed: ${a.changedComponents.join(', ')})` : ''}`,
    },
    { label: 'Version', cell: (a: Agent) => a.agentVersion ?? '—' },
    { label: 'Tasks in flight', cell: (a: Agent) => String(a.inFlightTasks) },
    { label: 'Last heartbeat', cell: (a: Agent) => time(a.lastHeartbeatAt) },
    {
      label: '',
      cell: (a: Agent) =>
        h(
          'span',
          { class: 'row-actions' },
          scope === 'admin' && a.status === 'quarantined' && writes ? act(a, 'release', 'Release') : '',
          a.status !== 'deregistered' && writes ? act(a, 'deregister', 'Deregister') : '',
        ),
    },
  ];
  async function loadPage(after?: string): Promise<void> {
    const res = await api<Page<Agent>>('GET', withQuery(base, { status, licenseId, customerId, after, limit: 50 }));
    rows.push(...res.items);
    const next = res.nextCursor;
    list.replaceChildren(
      table(columns, rows, 'No agents match.', 'Agents'),
      next ? actionButton('Show more', error, () => loadPage(next), { class: 'secondary' }) : '',
    );
  }
  await loadPage();
  const filters = form(
    {
      submit: 'Filter',
      class: 'form inline',
      label: 'Filter agents',
      action: async (v) =>
        ctx.go(withQuery('#/agents', { status: v.status, licenseId: v.licenseId, customerId: v.customerId })),
    },
    select('Status', 'status', [['', 'Any status'], ...AGENT_STATUSES.map((s): [string, string] => [s, s])], status),
    input('License id', { name: 'licenseId', value: licenseId, placeholder: 'lic_…' }),
    scope === 'admin' ? input('Customer id', { name: 'customerId', value: customerId, placeholder: 'cus_…' }) : '',
  );
  return page('Agents', filters, list, error);
}

/** The agents a task can be queued for, as `host · id · status` choices. */
function agentOptions(agents: Agent[]): Array<[string, string]> {
  return agents
    .filter((a) => a.status !== 'deregistered')
    .map((a): [string, string] => [a.id, `${a.hostnameHint ?? 'no host name'} · ${a.id} · ${a.status}`]);
}

export async function tasksView(ctx: RouteContext, scope: Scope): Promise<Node> {
  const state = ctx.query.get('state') ?? '';
  const agentId = ctx.query.get('agentId') ?? '';
  const base = `/v1/${scope}/tasks`;
  const error = errorLine();
  const list = h('div');
  const rows: Task[] = [];
  const { items: agents } = await api<Page<Agent>>('GET', withQuery(`/v1/${scope}/agents`, { limit: 200 }));
  const hosts = new Map(agents.map((a) => [a.id, a.hostnameHint]));
  const columns = [
    {
      label: 'Task',
      cell: (t: Task) =>
        h('span', {}, h('strong', {}, t.kind), h('small', { class: 'block' }, code(t.id)), jsonCell(t.payload)),
    },
    {
      label: 'Agent',
      cell: (t: Task) => h('span', {}, hosts.get(t.agentId) ?? '', h('small', { class: 'block' }, code(t.agentId))),
    },
    {
      label: 'State',
      cell: (t: Task) =>
        h('span', {}, badge(t.state), h('small', { class: 'block' }, `attempt ${t.attempts} of ${t.maxAttempts}`)),
    },
    {
      label: 'Outcome',
      cell: (t: Task) =>
        t.error
          ? h('span', { class: 'error-text' }, t.error)
          : t.result === null || t.result === undefined
            ? '—'
            : jsonCell(t.result),
    },
    {
      label: 'Created',
      cell: (t: Task) =>
        h(
          'span',
          {},
          h('span', { class: 'nowrap' }, time(t.createdAt)),
          h('small', { class: 'block' }, `by ${t.createdBy.kind}`),
        ),
    },
    {
      label: '',
      cell: (t: Task) =>
        (t.state === 'queued' || t.state === 'leased') && mayWrite(ctx, scope, 'tasks:write')
          ? actionButton(
              'Cancel',
              error,
              async () => {
                await api('POST', `${base}/${t.id}/cancel`);
                ctx.refresh();
              },
              { class: 'secondary small', 'aria-label': `Cancel ${t.id}` },
            )
          : '',
    },
  ];
  async function loadPage(before?: string): Promise<void> {
    const res = await api<Page<Task>>('GET', withQuery(base, { state, agentId, before, limit: 50 }));
    rows.push(...res.items);
    const next = res.nextCursor;
    const shown = table(columns, rows, 'No tasks match. Queue one below.', 'Tasks');
    shown.querySelector('table')?.classList.add('wrapping');
    list.replaceChildren(
      shown,
      next ? actionButton('Show more', error, () => loadPage(next), { class: 'secondary' }) : '',
    );
  }
  await loadPage();
  const choices = agentOptions(agents);
  const filters = form(
    {
      submit: 'Filter',
      class: 'form inline',
      label: 'Filter tasks',
      action: async (v) => ctx.go(withQuery('#/tasks', { state: v.state, agentId: v.agentId })),
    },
    select('State', 'state', [['', 'Any state'], ...TASK_STATES.map((s): [string, string] => [s, s])], state),
    select('Agent', 'agentId', [['', 'Any agent'], ...choices], agentId),
  );
  const create = choices.length
    ? form(
        {
          submit: 'Queue task',
          label: 'New task',
          action: async (v) => {
            let payload: unknown;
            try {
              payload = v.payload?.trim() ? JSON.parse(v.payload) : {};
            } catch {
              throw new Error('The payload is not valid JSON.');
            }
            await api('POST', base, {
              agentId: v.agentId,
              kind: v.kind,
              payload,
              ...(v.maxAttempts ? { maxAttempts: Number(v.maxAttempts) } : {}),
            });
            ctx.refresh();
          },
        },
        h(
          'div',
          { class: 'grid' },
          select('Agent', 'agentId', choices, agentId),
          select(
            'Kind',
            'kind',
            TASK_KINDS.map((k): [string, string] => [k, k]),
          ),
          input('Max attempts', { name: 'maxAttempts', type: 'number', min: 1, max: 20, placeholder: 'default' }),
        ),
        textarea('Payload (JSON)', 'payload', { placeholder: '{"message": "hello"}' }),
      )
    : h('p', { class: 'hint' }, 'No agent can take tasks yet: activate one with an activation token first.');
  return page(
    'Tasks',
    filters,
    list,
    error,
    mayWrite(ctx, scope, 'tasks:write') ? details('Queue a task', create) : '',
  );
}

/** Activation token columns (license page and token list): revocable while pending. */
export function tokenColumns(o: {
  revokeBase: string;
  /** false: no revoke buttons (a role that cannot change licenses). */
  writes?: boolean;
  error: HTMLElement;
  reload: () => Promise<void>;
  created?: boolean;
  licenseCell?: (t: ActivationToken) => Node | string;
}) {
  return [
    { label: 'Token', cell: (t: ActivationToken) => code(t.id) },
    { label: 'License', cell: o.licenseCell ?? ((t: ActivationToken) => t.licenseId) },
    { label: 'Label', cell: (t: ActivationToken) => t.label ?? '—' },
    { label: 'State', cell: (t: ActivationToken) => badge(t.state) },
    ...(o.created ? [{ label: 'Created', cell: (t: ActivationToken) => time(t.createdAt) }] : []),
    { label: 'Expires', cell: (t: ActivationToken) => time(t.expiresAt) },
    { label: 'Agent', cell: (t: ActivationToken) => t.agentId ?? '—' },
    {
      label: '',
      cell: (t: ActivationToken) =>
        t.state === 'pending' && o.writes !== false
          ? actionButton(
              'Revoke',
              o.error,
              async () => {
                await api('POST', `${o.revokeBase}/${t.id}/revoke`);
                await o.reload();
              },
              { class: 'secondary small', 'aria-label': `Revoke token ${t.id}` },
            )
          : '',
    },
  ];
}

/**
 * The command that redeems a token, for the machine the agent will run on. A local origin is a
 * development stack: the agent runs from the checkout as an ordinary user and pins the CA that
 * `npm start` made; elsewhere it is the installed agent (as root, it installs the service).
 */
export function activationHint(origin: string): HTMLElement {
  const local = /^https:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(origin);
  const cmd = (text: string) => h('code', { class: 'block' }, text);
  if (local)
    return h(
      'div',
      { class: 'hint' },
      h('p', {}, 'An agent redeems the token once. From the checkout that runs npm start, as a non-root user:'),
      cmd(`node bin/agentina-agent.js install --user --server ${origin} --ca .data/tls/ca.pem --token -`),
      h('p', {}, 'Paste the token when it waits on stdin, then start it with node bin/agentina-agent.js run --user.'),
    );
  if (!origin.startsWith('https:'))
    return h(
      'p',
      { class: 'hint' },
      'Agents only talk HTTPS: serve this control plane over HTTPS (npm start does unless AGENTINA_DEV_HTTP=1) to activate one.',
    );
  return h(
    'div',
    { class: 'hint' },
    h('p', {}, 'An agent redeems the token once. On its machine, as root (installs the agent as a service):'),
    cmd(`agentina-agent install --server ${origin} --token -`),
    h(
      'p',
      {},
      'Paste the token when it waits on stdin. Add --ca ca.pem if this server’s certificate is from a private CA.',
    ),
  );
}

export async function tokensView(ctx: RouteContext, scope: Scope): Promise<Node> {
  const licenseId = ctx.query.get('licenseId') ?? '';
  const customerId = scope === 'admin' ? (ctx.query.get('customerId') ?? '') : '';
  const base = `/v1/${scope}/activation-tokens`;
  const error = errorLine();
  const once = h('div');
  const list = h('div');
  const [{ items: licenses }] = await Promise.all([
    api<Page<License>>('GET', withQuery(`/v1/${scope}/licenses`, { limit: 200 })),
  ]);
  const usable = licenses.filter((l) => l.state !== 'revoked' && l.state !== 'expired');
  const reload = async () => {
    const { items } = await api<{ items: ActivationToken[] }>(
      'GET',
      withQuery(base, { licenseId, customerId, limit: 100 }),
    );
    list.replaceChildren(
      table(
        tokenColumns({
          revokeBase: base,
          writes: mayWrite(ctx, scope, 'licenses:write'),
          error,
          reload,
          created: true,
          ...(scope === 'admin'
            ? { licenseCell: (t: ActivationToken) => link(`#/licenses/${t.licenseId}`, t.licenseId) }
            : {}),
        }),
        items,
        'No activation tokens.',
        'Activation tokens',
      ),
    );
  };
  await reload();
  const issue = usable.length
    ? form(
        {
          submit: 'Create activation token',
          label: 'New activation token',
          action: async (v) => {
            const issued = await api<IssuedToken>('POST', base, {
              licenseId: v.licenseId,
              ...(v.label ? { label: v.label } : {}),
              ttlSeconds: Math.round(Number(v.hours) * 3600),
            });
            once.replaceChildren(secretOnce('Activation token', issued.token));
            await reload();
          },
        },
        h(
          'div',
          { class: 'grid' },
          select('License', 'licenseId', licenseOptions(usable), licenseId),
          input('Label', { name: 'label', maxlength: 200, placeholder: 'e.g. build server 3' }),
          input('Valid for (hours)', { name: 'hours', type: 'number', value: '24', min: 1, max: 720, required: true }),
        ),
        activationHint(location.origin),
      )
    : h('p', { class: 'hint' }, 'No license can take new agents right now.');
  const filters = form(
    {
      submit: 'Filter',
      class: 'form inline',
      label: 'Filter activation tokens',
      action: async (v) => ctx.go(withQuery('#/tokens', { licenseId: v.licenseId, customerId: v.customerId })),
    },
    input('License id', { name: 'licenseId', value: licenseId, placeholder: 'lic_…' }),
    scope === 'admin' ? input('Customer id', { name: 'customerId', value: customerId, placeholder: 'cus_…' }) : '',
  );
  return page(
    'Activation tokens',
    once,
    mayWrite(ctx, scope, 'licenses:write') ? issue : '',
    mayWrite(ctx, scope, 'licenses:write') ? offlineActivationSection(scope) : '',
    section('Issued tokens', filters, list, h('p', { class: 'hint' }, 'The 100 newest that match.')),
    error,
  );
}
