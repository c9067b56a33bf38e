import './style.css';
import { auditView } from './admin/audit';
import { overviewView } from './admin/overview';
import { agentView } from './admin/agent';
import { licenseView, licensesView } from './admin/licenses';
import { adminsView, customersView, customerView, serviceAccountsView } from './admin/people';
import { policiesView, policyView } from './admin/policies';
import { releasesView } from './admin/releases';
import { enrolmentGate, securityView } from './admin/second-factor';
import { webhooksView, webhookView } from './admin/webhooks';
import { agentsView, tasksView, tokensView } from './common-views';
import { startShell, type RouteContext } from './shell';

/** The admin UI, served at `/`. */
startShell(document.getElementById('app')!, {
  title: 'Agentina admin',
  prefix: '/v1/admin',
  home: 'overview',
  whoami: (me) => `Signed in as ${me.email}${me.role ? ` (${me.role})` : ''}`,
  secondFactor: true,
  interstitial: enrolmentGate,
  nav: [
    ['#/overview', 'Overview'],
    ['#/licenses', 'Licenses'],
    ['#/policies', 'Policies'],
    ['#/customers', 'Customers'],
    ['#/tokens', 'Activation tokens'],
    ['#/agents', 'Agents'],
    ['#/tasks', 'Tasks'],
    ['#/releases', 'Releases'],
    ['#/audit', 'Audit log'],
    ['#/webhooks', 'Webhooks'],
    ['#/service-accounts', 'Service accounts'],
    ['#/admins', 'Admins'],
    ['#/security', 'Security'],
  ],
  routes: {
    overview: overviewView,
    licenses: (ctx: RouteContext) => (ctx.params[0] ? licenseView(ctx) : licensesView(ctx)),
    policies: (ctx: RouteContext) => (ctx.params[0] ? policyView(ctx) : policiesView(ctx)),
    customers: (ctx: RouteContext) => (ctx.params[0] ? customerView(ctx) : customersView(ctx)),
    tokens: (ctx: RouteContext) => tokensView(ctx, 'admin'),
    agents: (ctx: RouteContext) => (ctx.params[0] ? agentView(ctx) : agentsView(ctx, 'admin')),
    tasks: (ctx: RouteContext) => tasksView(ctx, 'admin'),
    releases: releasesView,
    audit: auditView,
    webhooks: (ctx: RouteContext) => (ctx.params[0] ? webhookView(ctx) : webhooksView(ctx)),
    'service-accounts': serviceAccountsView,
    admins: adminsView,
    security: securityView,
  },
});
