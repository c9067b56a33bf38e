import './style.css';
import { auditView } from './admin/audit';
import { licenseView, licensesView } from './admin/licenses';
import { adminsView, customersView, customerView, serviceAccountsView } from './admin/people';
import { releasesView } from './admin/releases';
import { agentsView, tasksView, tokensView } from './common-views';
import { startShell, type RouteContext } from './shell';

/** The admin UI, served at `/`. */
startShell(document.getElementById('app')!, {
  title: 'Agentina admin',
  prefix: '/v1/admin',
  home: 'licenses',
  whoami: (me) => `Signed in as ${me.email}`,
  nav: [
    ['#/licenses', 'Licenses'],
    ['#/customers', 'Customers'],
    ['#/tokens', 'Activation tokens'],
    ['#/agents', 'Agents'],
    ['#/tasks', 'Tasks'],
    ['#/releases', 'Releases'],
    ['#/audit', 'Audit log'],
    ['#/service-accounts', 'Service accounts'],
    ['#/admins', 'Admins'],
  ],
  routes: {
    licenses: (ctx: RouteContext) => (ctx.params[0] ? licenseView(ctx) : licensesView(ctx)),
    customers: (ctx: RouteContext) => (ctx.params[0] ? customerView(ctx) : customersView(ctx)),
    tokens: (ctx: RouteContext) => tokensView(ctx, 'admin'),
    agents: (ctx: RouteContext) => agentsView(ctx, 'admin'),
    tasks: (ctx: RouteContext) => tasksView(ctx, 'admin'),
    releases: releasesView,
    audit: auditView,
    'service-accounts': serviceAccountsView,
    admins: adminsView,
  },
});
