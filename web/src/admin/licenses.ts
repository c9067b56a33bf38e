import { api, withQuery } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import { page } from '../shell';
import type {
  ActivationToken,
  Customer,
  IssuedToken,
  License,
  LicenseDetail,
  Page,
  PublicKeySets,
  SignedLicense,
} from '../types';
import { LICENSE_STATES } from '../types';
import type { LicenseAction } from '../../../protocol/views';
import { effectiveGraceDays } from '../../../protocol/license-terms';
import { DEFAULT_TASK_FEATURES } from '../../../protocol/entitlements';
import { confirmByName } from '../ui';
import { changeTermsForm } from './license-terms';

const ACTION_LABELS: Record<LicenseAction, string> = {
  renew: 'Renew',
  convertTrial: 'Convert trial',
  suspend: 'Suspend',
  resume: 'Resume',
  revoke: 'Revoke',
  changeTerms: 'Change terms',
};
import {
  actionButton,
  badge,
  code,
  details,
  dl,
  errorLine,
  featuresText,
  form,
  input,
  isoFromLocal,
  link,
  localInput,
  parseFeatures,
  section,
  secretOnce,
  select,
  showError,
  table,
  time,
} from '../ui';
import { checkLicenseSignature } from '../verify';
import { tokenColumns } from '../common-views';
import { storySection } from './license-story';
import { can } from './access';

const DAY = 86_400_000;

export async function customerNames(): Promise<Map<string, string>> {
  const { customers } = await api<{ customers: Customer[] }>('GET', '/v1/admin/customers');
  return new Map(customers.map((c) => [c.id, c.name]));
}

function customerOptions(names: Map<string, string>, any?: string): Array<[string, string]> {
  const opts = [...names]
    .sort((a, b) => a[1].localeCompare(b[1]))
    .map(([id, name]): [string, string] => [id, `${name} (${id})`]);
  return any ? [['', any], ...opts] : opts;
}

/** #/licenses?customerId=…&state=…: filters, pages, and the create form. */
export async function licensesView(ctx: RouteContext): Promise<Node> {
  const names = await customerNames();
  const customerId = ctx.query.get('customerId') ?? '';
  const state = ctx.query.get('state') ?? '';
  const list = h('div');
  const more = errorLine();

  const columns = [
    { label: 'License', cell: (l: License) => link(`#/licenses/${l.id}`, l.id) },
    { label: 'Customer', cell: (l: License) => names.get(l.customerId) ?? l.customerId },
    { label: 'Plan', cell: (l: License) => l.plan },
    { label: 'State', cell: (l: License) => badge(l.state) },
    { label: 'Expires', cell: (l: License) => time(l.trialEndsAt ?? l.expiresAt) },
    { label: 'Agents', cell: (l: License) => String(l.maxAgents) },
    { label: 'Version', cell: (l: License) => String(l.version) },
  ];
  const rows: License[] = [];
  async function loadPage(cursor?: string): Promise<void> {
    const res = await api<Page<License>>(
      'GET',
      withQuery('/v1/admin/licenses', { customerId, state, cursor, limit: 50 }),
    );
    rows.push(...res.items);
    const next = res.nextCursor;
    list.replaceChildren(
      table(columns, rows, 'No licenses match.', 'Licenses'),
      next ? actionButton('Show more', more, () => loadPage(next), { class: 'secondary' }) : '',
      more,
    );
  }
  await loadPage();

  const filters = form(
    {
      submit: 'Filter',
      class: 'form inline',
      label: 'Filter licenses',
      action: async (v) => ctx.go(withQuery('#/licenses', { customerId: v.customerId, state: v.state })),
    },
    select('Customer', 'customerId', customerOptions(names, 'Any customer'), customerId),
    select('State', 'state', [['', 'Any state'], ...LICENSE_STATES.map((s): [string, string] => [s, s])], state),
  );

  return page(
    'Licenses',
    filters,
    list,
    !can(ctx.me, 'licenses:write')
      ? ''
      : names.size
        ? createLicenseForm(ctx, names, customerId)
        : h('p', { class: 'hint' }, 'Create a customer first, then its licenses.'),
  );
}

function createLicenseForm(ctx: RouteContext, names: Map<string, string>, customerId: string): HTMLElement {
  const f = form(
    {
      submit: 'Create license',
      label: 'New license',
      action: async (v) => {
        const days = Number(v.days);
        const body: Record<string, unknown> = {
          customerId: v.customerId,
          plan: v.plan,
          features: parseFeatures(v.features ?? ''),
          maxAgents: Number(v.maxAgents),
          graceDays: Number(v.graceDays),
          ...(v.kind === 'trial' ? { trial: { days }, trialEndState: v.trialEndState } : { term: { days } }),
        };
        const res = await api<{ license: License }>('POST', '/v1/admin/licenses', body);
        ctx.go(`#/licenses/${res.license.id}`);
      },
    },
    h(
      'div',
      { class: 'grid' },
      select('Customer', 'customerId', customerOptions(names), customerId),
      input('Plan', { name: 'plan', required: true, value: 'standard', maxlength: 100 }),
      input('Features', {
        name: 'features',
        placeholder: 'sso, seats=10',
        value: Object.keys(DEFAULT_TASK_FEATURES).join(', '),
        hint: 'Comma-separated; name or name=value. Task kinds not named here are refused (tasks.per_day=N, tasks.max_concurrent=N cap them).',
      }),
      input('Max agents', { name: 'maxAgents', type: 'number', required: true, value: '5', min: 1, max: 100000 }),
      select('Kind', 'kind', [
        ['term', 'Paid term'],
        ['trial', 'Trial'],
      ]),
      input('Length (days)', { name: 'days', type: 'number', required: true, value: '365', min: 1, max: 3650 }),
      input('Grace days', { name: 'graceDays', type: 'number', required: true, value: '7', min: 0, max: 365 }),
      select('When a trial ends unconverted', 'trialEndState', [
        ['expired', 'expire'],
        ['grace', 'enter grace'],
      ]),
    ),
  );
  return details('New license', f);
}

/** #/licenses/lic_…: facts, workflow state, actions, signature check, activation tokens. */
export async function licenseView(ctx: RouteContext): Promise<Node> {
  const id = ctx.params[0] ?? '';
  const root = h('div', { class: 'page' });
  async function load(flash?: string): Promise<void> {
    const [detail, names] = await Promise.all([
      api<LicenseDetail>('GET', `/v1/admin/licenses/${encodeURIComponent(id)}`),
      customerNames(),
    ]);
    root.replaceChildren(...renderLicense(detail, names, load, can(ctx.me, 'licenses:write'), flash));
  }
  await load();
  return root;
}

function renderLicense(
  d: LicenseDetail,
  names: Map<string, string>,
  reload: (flash?: string) => Promise<void>,
  /** Whether the signed-in role may change licenses: without it, no action is offered. */
  writer: boolean,
  flash?: string,
): Array<Node | string> {
  const l = d.license;
  const wf = d.workflow.current;
  const state = wf?.state ?? l.state;
  const base = `/v1/admin/licenses/${encodeURIComponent(l.id)}`;
  const change = (verb: string, path: string, body?: unknown) => async () => {
    await api('POST', `${base}/${path}`, body);
    await reload(`${verb}.`);
  };
  const inAYear = localInput(new Date(Math.max(Date.parse(l.expiresAt), Date.now()) + 365 * DAY));

  const facts = dl([
    ['State', h('span', { 'data-testid': 'license-state' }, badge(state))],
    ['Reason', wf?.reason ?? l.stateReason ?? '—'],
    ['Customer', link(`#/customers/${l.customerId}`, names.get(l.customerId) ?? l.customerId)],
    ['Plan', l.plan],
    ['Features', featuresText(l.features)],
    ['Max agents', h('span', {}, String(l.maxAgents), ' · ', link(`#/agents?licenseId=${l.id}`, 'Show agents'))],
    ['Version', h('span', { 'data-testid': 'license-version' }, String(wf?.version ?? l.version))],
    ['Policy', l.policyId ? link(`#/policies/${l.policyId}`, `${l.policyId} (version ${l.policyVersion})`) : '—'],
    ['Not before', time(l.notBefore)],
    ...(l.trialEndsAt ? [['Trial ends', time(l.trialEndsAt)] as [string, string]] : []),
    ['Expires', time(l.expiresAt)],
    [
      'Grace',
      effectiveGraceDays(l) === 0
        ? l.trialEndsAt
          ? 'none: the trial ends straight in expired'
          : 'none'
        : `${effectiveGraceDays(l)} days (ends ${time(l.graceEndsAt)})`,
    ],
    ['Next transition', time(wf?.nextTransitionAt)],
    [
      'Workflow',
      h(
        'span',
        {},
        code(d.workflow.id),
        ' ',
        link(d.workflow.url, 'Open in Temporal Web', { target: '_blank', rel: 'noopener noreferrer' }),
      ),
    ],
  ]);
  const workflowNote = wf
    ? null
    : h(
        'p',
        { class: 'hint' },
        'The workflow did not answer just now; the state shown is the last one recorded in the database.',
      );

  const forms: Record<LicenseAction, () => HTMLElement> = {
    renew: () =>
      form(
        {
          submit: 'Renew',
          label: 'Renew',
          action: async (v) => change('Renewed', 'renew', { expiresAt: isoFromLocal(v.expiresAt) })(),
        },
        input('New expiry', { name: 'expiresAt', type: 'datetime-local', required: true, value: inAYear }),
      ),
    convertTrial: () =>
      form(
        {
          submit: 'Convert trial',
          label: 'Convert trial',
          action: async (v) => change('Converted', 'convert-trial', { expiresAt: isoFromLocal(v.expiresAt) })(),
        },
        input('Paid until', { name: 'expiresAt', type: 'datetime-local', required: true, value: inAYear }),
      ),
    suspend: () =>
      form(
        {
          submit: 'Suspend',
          label: 'Suspend',
          action: async (v) => change('Suspended', 'suspend', { reason: v.reason })(),
        },
        input('Reason for suspending', { name: 'reason', required: true, maxlength: 500 }),
      ),
    resume: () =>
      form(
        { submit: 'Resume', label: 'Resume', action: change('Resumed', 'resume') },
        h('p', { class: 'hint' }, 'Back to the state its dates say.'),
      ),
    revoke: () =>
      form(
        {
          submit: 'Revoke',
          label: 'Revoke',
          class: 'form danger',
          action: async (v) => change('Revoked', 'revoke', { reason: v.reason })(),
        },
        input('Reason for revoking', { name: 'reason', required: true, maxlength: 500 }),
        confirmByName('license id', l.id, 'Revocation is final: every agent of this license stops.'),
      ),
    changeTerms: () => changeTermsForm(l, reload),
  };
  const allowed = d.actions.filter((a) => a.allowed);
  const refused = d.actions.filter((a) => !a.allowed);
  const actions = section(
    'Actions',
    !writer
      ? h('p', { class: 'hint' }, 'Your role can read licenses, not change them.')
      : allowed.length
        ? h('div', { class: 'actions' }, ...allowed.map((a) => forms[a.action]()))
        : h('p', { class: 'hint' }, 'The lifecycle accepts no change in this state.'),
    refused.length
      ? h(
          'ul',
          { class: 'hint refused', 'aria-label': 'Not available now' },
          ...refused.map((a) => h('li', {}, h('strong', {}, ACTION_LABELS[a.action]), ': ', a.reason ?? '')),
        )
      : '',
  );

  return [
    h('h1', {}, 'License ', code(l.id)),
    flash ? h('p', { class: 'flash', role: 'status' }, flash) : '',
    facts,
    workflowNote ?? '',
    signatureSection(base),
    actions,
    storySection(l.id),
    tokensSection(l.id, writer),
  ];
}

/** Fetches the signed document and the public key set, and checks the signature right here. */
function signatureSection(base: string): HTMLElement {
  const result = h('p', { 'data-testid': 'signature', 'aria-live': 'polite' }, 'Not checked yet.');
  const doc = h('pre', { class: 'doc' });
  const error = errorLine();
  const check = async () => {
    result.textContent = 'Checking…';
    result.className = '';
    const [signed, keys] = await Promise.all([
      api<SignedLicense>('GET', `${base}/document`),
      api<PublicKeySets>('GET', '/.well-known/agentina-keys.json'),
    ]);
    doc.textContent = JSON.stringify(signed, null, 2);
    const r = checkLicenseSignature(signed, keys);
    result.className = r.ok ? 'ok' : 'bad';
    result.textContent = r.ok
      ? `Signature valid (key ${r.kid}, checked in this browser).`
      : `Signature invalid: ${r.reason}.`;
  };
  const button = actionButton('Check signature', error, check, { class: 'secondary' });
  check().catch((err: unknown) => {
    result.textContent = 'Could not check.';
    showError(error, err);
  });
  return section(
    'License document',
    h('p', { class: 'hint' }, 'Verified with Ed25519 (tweetnacl) against /.well-known/agentina-keys.json.'),
    result,
    button,
    error,
    details('Signed document', doc),
  );
}

function tokensSection(licenseId: string, writer: boolean): HTMLElement {
  const list = h('div');
  const once = h('div');
  const error = errorLine();
  const reload = async () => {
    const { items } = await api<{ items: ActivationToken[] }>(
      'GET',
      withQuery('/v1/admin/activation-tokens', { licenseId }),
    );
    list.replaceChildren(
      table(
        tokenColumns({ revokeBase: '/v1/admin/activation-tokens', writes: writer, error, reload }),
        items,
        'No activation tokens for this license yet.',
        'Activation tokens',
      ),
    );
  };
  reload().catch((err: unknown) => showError(error, err));
  const issue = form(
    {
      submit: 'Issue activation token',
      class: 'form inline',
      label: 'Issue activation token',
      action: async (v) => {
        const issued = await api<IssuedToken>('POST', '/v1/admin/activation-tokens', {
          licenseId,
          ...(v.label ? { label: v.label } : {}),
          ttlSeconds: Math.round(Number(v.hours) * 3600),
        });
        once.replaceChildren(secretOnce('Activation token', issued.token));
        await reload();
      },
    },
    input('Label', { name: 'label', maxlength: 200, placeholder: 'e.g. build server 3' }),
    input('Valid for (hours)', { name: 'hours', type: 'number', value: '24', min: 1, max: 720, required: true }),
  );
  return section('Activation tokens', once, writer ? issue : '', list, error);
}
