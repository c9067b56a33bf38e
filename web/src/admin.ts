import './style.css';
import { auditView } from './admin/audit';
import { licenseView, licensesView } from './admin/licenses';
import { adminsView, customersView, customerView, serviceAccountsView } from './admin/people';
import { enrolmentGate, securityView } from './admin/second-factor';
import { agentsView, tasksView, tokensView } from './common-views';
import { startShell, type RouteContext } from './shell';

/** The admin UI, served at `/`. */
startShell(document.getElementById('app')!, {
  title: 'Agentina admin',
  prefix: '/v1/admin',
  home: 'licenses',
  whoami: (me) => `Signed in as ${me.email}${me.role ? ` (${me.role})` : ''}`,
  secondFactor: true,
  interstitial: enrolmentGate,
  nav: [
    ['#/licenses', 'Licenses'],
    ['#/customers', 'Customers'],
    ['#/tokens', 'Activation tokens'],
    ['#/agents', 'Agents'],
    ['#/tasks', 'Tasks'],
    ['#/audit', 'Audit log'],
    ['#/service-accounts', 'Service accounts'],
    ['#/admins', 'Admins'],
    ['#/security', 'Security'],
  ],
  routes: {
    licenses: (ctx: RouteContext) => (ctx.params[0] ? licenseView(ctx) : licensesView(ctx)),
    customers: (ctx: RouteContext) => (ctx.params[0] ? customerView(ctx) : customersView(ctx)),
    tokens: (ctx: RouteContext) => tokensView(ctx, 'admin'),
    agents: (ctx: RouteContext) => agentsView(ctx, 'admin'),
    tasks: (ctx: RouteContext) => tasksView(ctx, 'admin'),
    audit: auditView,
    'service-accounts': serviceAccountsView,
    admins: adminsView,
    security: securityView,
  },
});
