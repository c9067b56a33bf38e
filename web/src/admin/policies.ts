import { api, withQuery } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import { page } from '../shell';
import type { Policy, PolicyApply, PolicyTerms } from '../types';
import { POLICY_KINDS, UPDATE_POLICIES } from '../types';
import { canonicalJson } from '../../../protocol/canonical-json';
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
  link,
  parseFeatures,
  section,
  select,
  table,
  time,
} from '../ui';
import { featuresInput } from './license-terms';
import { customerNames } from './licenses';

type PolicyVersion = PolicyTerms & {
  version: number;
  name: string;
  createdAt: string;
  createdBy: { kind: string; id: string };
};

const opts = (values: readonly string[]): Array<[string, string]> => values.map((v): [string, string] => [v, v]);

/** The policy's fields, prefilled from `p` (a new policy's defaults when absent). */
function policyFields(p?: Policy): HTMLElement {
  return h(
    'div',
    { class: 'grid' },
    input('Name', { name: 'name', required: true, value: p?.name ?? '', maxlength: 100 }),
    input('Plan', { name: 'plan', value: p?.plan ?? '', maxlength: 100, hint: 'Default: the name.' }),
    select('Kind', 'kind', opts(POLICY_KINDS), p?.kind ?? 'term'),
    input('Length (days)', {
      name: 'durationDays',
      type: 'number',
      required: true,
      value: String(p?.durationDays ?? 365),
      min: 1,
      max: 3650,
    }),
    input('Grace days', { name: 'graceDays', type: 'number', value: String(p?.graceDays ?? 7), min: 0, max: 365 }),
    select('When a trial ends unconverted', 'trialEndState', opts(['expired', 'grace']), p?.trialEndState ?? 'expired'),
    input('Max agents', {
      name: 'maxAgents',
      type: 'number',
      required: true,
      value: String(p?.maxAgents ?? 5),
      min: 1,
      max: 100000,
    }),
    input('Features', {
      name: 'features',
      value: p ? featuresInput(p.features) : '',
      placeholder: 'sso, seats=10',
      hint: 'Comma-separated; name or name=value.',
    }),
    input('Seat reclaim (days offline)', {
      name: 'seatReclaimDays',
      type: 'number',
      value: String(p?.seatReclaimDays ?? 14),
      min: 0,
      max: 365,
      hint: '0 = never.',
    }),
    select('Agent updates', 'updatePolicy', opts(UPDATE_POLICIES), p?.updatePolicy ?? 'automatic'),
  );
}

function policyBody(v: Record<string, string>): Record<string, unknown> {
  return {
    name: (v.name ?? '').trim(),
    ...(v.plan?.trim() ? { plan: v.plan.trim() } : {}),
    kind: v.kind,
    durationDays: Number(v.durationDays),
    graceDays: Number(v.graceDays),
    trialEndState: v.trialEndState,
    maxAgents: Number(v.maxAgents),
    features: parseFeatures(v.features ?? ''),
    seatReclaimDays: Number(v.seatReclaimDays),
    updatePolicy: v.updatePolicy,
  };
}

/** #/policies: the list, archived ones on request, and the create form. */
export async function policiesView(ctx: RouteContext): Promise<Node> {
  const archived = ctx.query.get('archived') === 'true';
  const { items } = await api<{ items: Policy[] }>(
    'GET',
    withQuery('/v1/admin/policies', { archived: String(archived) }),
  );
  const columns = [
    { label: 'Policy', cell: (p: Policy) => link(`#/policies/${p.id}`, p.name) },
    { label: 'Version', cell: (p: Policy) => String(p.version) },
    { label: 'Plan', cell: (p: Policy) => p.plan },
    { label: 'Length', cell: (p: Policy) => `${p.kind} · ${p.durationDays} days` },
    { label: 'Agents', cell: (p: Policy) => String(p.maxAgents) },
    { label: 'Licenses', cell: (p: Policy) => String(p.licenseCount) },
    { label: 'State', cell: (p: Policy) => badge(p.archivedAt ? 'archived' : 'active') },
  ];
  const create = form(
    {
      submit: 'Create policy',
      label: 'New policy',
      action: async (v) => {
        const p = await api<Policy>('POST', '/v1/admin/policies', policyBody(v));
        ctx.go(`#/policies/${p.id}`);
      },
    },
    policyFields(),
  );
  return page(
    'Policies',
    h(
      'p',
      { class: 'hint' },
      'Templates for new licenses. Changing one never changes existing licenses until you apply it.',
    ),
    link(withQuery('#/policies', { archived: archived ? '' : 'true' }), archived ? 'Hide archived' : 'Show archived'),
    table(columns, items, 'No policies yet.', 'Policies'),
    details('New policy', create),
  );
}

/** #/policies/pol_…: its terms, versions, edit, apply to its licenses, archive. */
export async function policyView(ctx: RouteContext): Promise<Node> {
  const id = ctx.params[0] ?? '';
  const root = h('div', { class: 'page' });
  async function load(flash?: string, applied?: PolicyApply): Promise<void> {
    const [d, names] = await Promise.all([
      api<{ policy: Policy; versions: PolicyVersion[] }>('GET', `/v1/admin/policies/${encodeURIComponent(id)}`),
      customerNames(),
    ]);
    root.replaceChildren(
      ...renderPolicy(d.policy, d.versions, load, flash, applied),
      d.policy.archivedAt ? '' : newLicenseForm(ctx, d.policy, names),
    );
  }
  await load();
  return root;
}

function renderPolicy(
  p: Policy,
  versions: PolicyVersion[],
  reload: (flash?: string, applied?: PolicyApply) => Promise<void>,
  flash?: string,
  applied?: PolicyApply,
): Array<Node | string> {
  const base = `/v1/admin/policies/${encodeURIComponent(p.id)}`;
  const facts = dl([
    ['State', badge(p.archivedAt ? 'archived' : 'active')],
    ['Version', h('span', { 'data-testid': 'policy-version' }, String(p.version))],
    ['Plan', p.plan],
    ['Length', `${p.kind === 'trial' ? 'trial' : 'paid term'} of ${p.durationDays} days`],
    ['Grace', `${p.graceDays} days`],
    ['Trial ends in', p.trialEndState],
    ['Max agents', String(p.maxAgents)],
    ['Features', featuresText(p.features)],
    ['Seat reclaim', p.seatReclaimDays === 0 ? 'never' : `after ${p.seatReclaimDays} days offline`],
    ['Agent updates', p.updatePolicy],
    ['Licenses', `${p.licenseCount} record this policy`],
  ]);
  const error = errorLine();
  const edit = form(
    {
      submit: 'Save as new version',
      label: 'Edit policy',
      action: async (v) => {
        const body = policyBody(v);
        const current: Record<string, unknown> = { ...p };
        const changed = Object.fromEntries(
          Object.entries(body).filter(([k, val]) => canonicalJson(val) !== canonicalJson(current[k])),
        );
        if (!Object.keys(changed).length) throw new Error('Nothing to change: these are the policy’s terms.');
        const next = await api<Policy>('PATCH', base, changed);
        await reload(`Saved as version ${next.version}. Existing licenses keep their terms until you apply it.`);
      },
    },
    policyFields(p),
  );
  const apply = actionButton('Apply to its licenses', error, async () => {
    const result = await api<PolicyApply>('POST', `${base}/apply`, {});
    const n = (o: string) => result.results.filter((r) => r.outcome === o).length;
    await reload(
      `Applied version ${result.policyVersion}: ${n('changed')} changed, ${n('unchanged')} unchanged, ${n('refused') + n('failed')} refused.`,
      result,
    );
  });
  const archive = actionButton(
    'Archive',
    error,
    async () => {
      await api('POST', `${base}/archive`, {});
      await reload('Archived: it makes no new licenses; its licenses keep their terms.');
    },
    { class: 'danger' },
  );
  const outcomes = applied
    ? section(
        'Apply results',
        table(
          [
            {
              label: 'License',
              cell: (r: PolicyApply['results'][number]) => link(`#/licenses/${r.licenseId}`, r.licenseId),
            },
            { label: 'Outcome', cell: (r: PolicyApply['results'][number]) => badge(r.outcome) },
            {
              label: 'Version',
              cell: (r: PolicyApply['results'][number]) => (r.version === null ? '—' : String(r.version)),
            },
            { label: 'Why', cell: (r: PolicyApply['results'][number]) => r.message ?? '' },
          ],
          applied.results,
          'No license records this policy.',
          'Apply results',
        ),
      )
    : '';
  return [
    h('h1', {}, 'Policy ', p.name, ' ', code(p.id)),
    flash ? h('p', { class: 'flash', role: 'status' }, flash) : '',
    facts,
    outcomes,
    p.archivedAt
      ? h('p', { class: 'hint' }, `Archived ${time(p.archivedAt)}.`)
      : section(
          'Actions',
          details('Edit (writes a new version)', edit),
          h(
            'p',
            { class: 'hint' },
            'Apply sends this version’s plan, features, max agents and grace days to each license of the policy through its lifecycle; a license that cannot take them is listed with the reason.',
          ),
          h('div', { class: 'actions' }, apply, archive),
          error,
        ),
    section(
      'Versions',
      table(
        [
          { label: 'Version', cell: (v: PolicyVersion) => String(v.version) },
          { label: 'Saved', cell: (v: PolicyVersion) => time(v.createdAt) },
          { label: 'By', cell: (v: PolicyVersion) => `${v.createdBy.kind} ${v.createdBy.id}` },
          { label: 'Plan', cell: (v: PolicyVersion) => v.plan },
          { label: 'Agents', cell: (v: PolicyVersion) => String(v.maxAgents) },
          { label: 'Grace', cell: (v: PolicyVersion) => String(v.graceDays) },
          { label: 'Features', cell: (v: PolicyVersion) => featuresText(v.features) },
        ],
        versions,
        'No versions.',
        'Versions',
      ),
    ),
  ];
}

/** A license from this policy's current version: only the customer to choose. */
function newLicenseForm(ctx: RouteContext, p: Policy, names: Map<string, string>): HTMLElement {
  const customers = [...names].map(([cid, name]): [string, string] => [cid, `${name} (${cid})`]);
  return details(
    'New license from this policy',
    customers.length
      ? form(
          {
            submit: 'Create license',
            label: 'New license from this policy',
            action: async (v) => {
              const res = await api<{ license: { id: string } }>('POST', '/v1/admin/licenses', {
                customerId: v.customerId,
                policyId: p.id,
              });
              ctx.go(`#/licenses/${res.license.id}`);
            },
          },
          select('Customer', 'customerId', customers),
        )
      : h('p', { class: 'hint' }, 'Create a customer first.'),
  );
}
