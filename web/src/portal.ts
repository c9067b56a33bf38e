import './style.css';
import { api, withQuery } from './api';
import { h } from './dom';
import { agentsView, tasksView, tokensView } from './common-views';
import { page, startShell, type RouteContext } from './shell';
import type { License, Page, PublicKeySets, SignedLicense } from './types';
import { actionButton, badge, code, errorLine, featuresText, link, table, time } from './ui';
import { checkLicenseSignature } from './verify';
import { portalSecurityView } from './portal-security';

/** The customer portal, served at `/portal`: the signed-in customer's own licenses, agents, tokens and tasks. */
async function licensesView(ctx: RouteContext): Promise<Node> {
  const rows: License[] = [];
  const list = h('div');
  const error = errorLine();
  const columns = [
    { label: 'License', cell: (l: License) => code(l.id) },
    { label: 'Plan', cell: (l: License) => l.plan },
    { label: 'State', cell: (l: License) => badge(l.state) },
    { label: 'Features', cell: (l: License) => featuresText(l.features) },
    { label: 'Agents', cell: (l: License) => `up to ${l.maxAgents}` },
    { label: 'Grace', cell: (l: License) => `${l.graceDays} days` },
    { label: 'Version', cell: (l: License) => String(l.version) },
    { label: 'Expires', cell: (l: License) => time(l.trialEndsAt ?? l.expiresAt) },
    { label: 'Signature', cell: (l: License) => signatureCell(l.id) },
    { label: '', cell: (l: License) => link(withQuery('#/tokens', { licenseId: l.id }), 'Activation tokens') },
  ];
  async function loadPage(cursor?: string): Promise<void> {
    const res = await api<Page<License>>('GET', withQuery('/v1/portal/licenses', { cursor, limit: 50 }));
    rows.push(...res.items);
    const next = res.nextCursor;
    list.replaceChildren(
      table(columns, rows, 'You have no licenses yet.', 'Your licenses'),
      next ? actionButton('Show more', error, () => loadPage(next), { class: 'secondary' }) : '',
    );
  }
  await loadPage();
  return page(`Licenses of ${ctx.me.customerName ?? 'your organisation'}`, list, error);
}

function signatureCell(licenseId: string): HTMLElement {
  const out = h('span', { 'aria-live': 'polite' });
  const error = errorLine();
  const b = actionButton(
    'Check',
    error,
    async () => {
      const [signed, keys] = await Promise.all([
        api<SignedLicense>('GET', `/v1/portal/licenses/${licenseId}/document`),
        api<PublicKeySets>('GET', '/.well-known/agentina-keys.json'),
      ]);
      const r = checkLicenseSignature(signed, keys);
      out.className = r.ok ? 'ok' : 'bad';
      out.textContent = r.ok ? ' valid' : ` invalid: ${r.reason}`;
    },
    { class: 'secondary small', 'aria-label': `Check the signature of ${licenseId}` },
  );
  return h('span', {}, b, out, error);
}

startShell(document.getElementById('app')!, {
  title: 'Agentina portal',
  prefix: '/v1/portal',
  home: 'licenses',
  secondFactor: true,
  whoami: (me) => `${me.email} · ${me.customerName ?? ''}`,
  nav: [
    ['#/licenses', 'Licenses'],
    ['#/agents', 'Agents'],
    ['#/tokens', 'Activation tokens'],
    ['#/tasks', 'Tasks'],
    ['#/security', 'Security'],
  ],
  routes: {
    licenses: licensesView,
    agents: (ctx) => agentsView(ctx, 'portal'),
    tokens: (ctx) => tokensView(ctx, 'portal'),
    tasks: (ctx) => tasksView(ctx, 'portal'),
    security: portalSecurityView,
  },
});
