import { api } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import { page } from '../shell';
import type { Overview } from '../types';
import { AGENT_STATUSES, LICENSE_STATES } from '../types';
import { badge, link, section, table } from '../ui';
import { auditColumns, whenCell } from './audit-format';

type Ending = Overview['licenses']['endingSoon'][number];

/** A number that links to the list it counts. */
function tile(count: number, label: string, href: string, state?: string): HTMLElement {
  return h(
    'a',
    { class: `tile${count > 0 && state ? ` tile-${state}` : ''}`, href, 'data-testid': `tile-${label}` },
    h('strong', {}, String(count)),
    h('span', {}, label),
  );
}

// Empty states say what to do next: [text, link target, link text, text].
type Empty = [string, string, string, string];
const NO_LICENSES: Empty = ['No licenses yet. ', '#/customers', 'Create a customer', ', then its first license.'];
const NO_AGENTS: Empty = [
  'No agents yet. ',
  '#/tokens',
  'Create an activation token',
  ' and run the command it shows.',
];

/** One tile per value; when every count is 0, what to do next instead. */
function tilesSection<K extends string>(
  title: string,
  keys: readonly K[],
  counts: Record<K, number>,
  listHref: string,
  [before, href, text, after]: Empty,
): HTMLElement {
  const total = keys.reduce((n, k) => n + counts[k], 0);
  return section(
    title,
    h('div', { class: 'tiles' }, ...keys.map((k) => tile(counts[k], k, listHref + k, k))),
    total === 0 ? h('p', { class: 'empty' }, before, link(href, text), after) : '',
  );
}

function days(iso: string, now: number): string {
  const d = Math.round((Date.parse(iso) - now) / 86_400_000);
  if (d < 0) return `${-d} day${d === -1 ? '' : 's'} overdue`;
  if (d === 0) return 'today';
  return `in ${d} day${d === 1 ? '' : 's'}`;
}

/** #/overview, the admin home: the fleet at a glance, each number a link to its filtered list. */
export async function overviewView(_ctx: RouteContext): Promise<Node> {
  const o = await api<Overview>('GET', '/v1/admin/overview');
  const now = Date.parse(o.generatedAt);
  const licenses = tilesSection('Licenses', LICENSE_STATES, o.licenses.byState, '#/licenses?state=', NO_LICENSES);
  const ending = section(
    'Ending soon',
    h(
      'p',
      { class: 'hint' },
      `${o.licenses.endingWithin7Days} within 7 days, ${o.licenses.endingWithin30Days} within 30 days: trials at their end, paid terms at expiry, grace at its end.`,
    ),
    table(
      [
        { label: 'License', cell: (l: Ending) => link(`#/licenses/${l.id}`, l.id) },
        { label: 'Customer', cell: (l: Ending) => link(`#/customers/${l.customerId}`, l.customerName) },
        { label: 'Plan', cell: (l: Ending) => l.plan },
        { label: 'State', cell: (l: Ending) => badge(l.state) },
        {
          label: 'Ends',
          cell: (l: Ending) => h('span', {}, whenCell(l.endsAt), ' ', h('small', {}, days(l.endsAt, now))),
        },
      ],
      o.licenses.endingSoon,
      'Nothing ends in the next 30 days.',
      'Licenses ending soon',
    ),
  );
  const agents = tilesSection('Agents', AGENT_STATUSES, o.agents.byStatus, '#/agents?status=', NO_AGENTS);
  const events = section(
    'Recent notable events',
    h(
      'p',
      { class: 'hint' },
      'Revocations, suspensions, expiries, quarantines, mismatches and refused requests. ',
      link('#/audit', 'Full audit log'),
    ),
    table(auditColumns(o.names), o.recentEvents, 'Nothing notable has happened yet.', 'Recent notable events'),
  );
  return page('Overview', h('div', { class: 'overview' }, licenses, agents), ending, events);
}
