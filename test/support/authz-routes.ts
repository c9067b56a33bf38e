import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import type { RegisteredRoute } from '../../api/auth/access';
import { newId } from '../../protocol';
import { createAgent, createLicense } from './agent-server-fixtures';

/**
 * The authorization matrix: one row per registered route, saying what each principal gets.
 * test/integration/authz-matrix.test.ts calls every route with every principal and fails on any
 * difference, on any registered route without a row, and on any row without a route.
 *
 * Adding a route = adding one line here, e.g.
 *   allow('GET /v1/admin/things', { admin: 200, service: 200 }),
 *   allow('GET /v1/portal/things/:id', { customerA: 200, customerB: 404 }, { path: '/v1/portal/things/{thingA}', setup: makeThingForA }),
 * Principals left out of `allow` get the denial: 401 when their credential is not valid
 * (anonymous, deactivated admin, revoked service account), 403 when it is of the wrong kind.
 * Another customer's resource is a 404, never a 403.
 */
export const PRINCIPALS = [
  'anonymous',
  'admin',
  'deactivatedAdmin',
  'customerA',
  'customerB',
  'service',
  'revokedService',
  'agent',
] as const;
export type PrincipalName = (typeof PRINCIPALS)[number];

/** Ids every row may use as `{name}` in its path: the principals' own and some spares to act on. */
export type Fixtures = {
  admin: string;
  customerA: string;
  customerB: string;
  userA: string;
  userB: string;
  spareAdmin: string;
  spareCustomer: string;
  spareUserA: string;
  spareServiceAccount: string;
  [more: string]: string;
};

export type RowSetup = (ctx: { pool: Pool; fixtures: Fixtures }) => Promise<Record<string, string>>;

export type AuthzRow = {
  method: string;
  /** The route exactly as registered (with :params). */
  url: string;
  /** The concrete path to call; `{name}` is replaced from the fixtures (and from `setup`). */
  path: string;
  /** Sent as JSON with unsafe methods; `{}` unless given. */
  body?: unknown;
  expect: Record<PrincipalName, number>;
  setup?: RowSetup;
};

const INVALID_CREDENTIAL: ReadonlySet<PrincipalName> = new Set(['anonymous', 'deactivatedAdmin', 'revokedService']);

type RowOptions = { path?: string; body?: unknown; setup?: RowSetup };

function parse(route: string): { method: string; url: string } {
  const [method, url] = route.split(' ');
  if (!method || !url) throw new Error(`route must read "METHOD /path": ${route}`);
  return { method, url };
}

/** Only the listed principals get through, with the given status; the rest are refused. */
export function allow(route: string, allowed: Partial<Record<PrincipalName, number>>, opts: RowOptions = {}): AuthzRow {
  const { method, url } = parse(route);
  const expect = Object.fromEntries(
    PRINCIPALS.map((p) => [p, allowed[p] ?? (INVALID_CREDENTIAL.has(p) ? 401 : 403)]),
  ) as Record<PrincipalName, number>;
  return {
    method,
    url,
    path: opts.path ?? url,
    expect,
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    ...(opts.setup ? { setup: opts.setup } : {}),
  };
}

/** A public route: every principal gets `status`. */
export function pub(route: string, status = 200, opts: RowOptions = {}): AuthzRow {
  return allow(route, Object.fromEntries(PRINCIPALS.map((p) => [p, status])), opts);
}

const ADMIN = { admin: 200 };
const ADMIN_SERVICE = { admin: 200, service: 200 };
const PORTAL = { customerA: 200, customerB: 200 };
/** Authorized callers whose `{}` body is rejected: proves they got past access control. */
const ADMIN_400 = { admin: 400 };
const ADMIN_SERVICE_400 = { admin: 400, service: 400 };

/** A fresh agent of customer A (its own license), so rows that change it do not affect others. */
async function agentOfA({ pool, fixtures }: { pool: Pool; fixtures: Fixtures }): Promise<Record<string, string>> {
  const licenseId = await createLicense(pool, fixtures.customerA);
  return { agentA: (await createAgent(pool, licenseId, fixtures.customerA)).agentId };
}

/** A fresh license of customer A. */
async function licenseOfA({ pool, fixtures }: { pool: Pool; fixtures: Fixtures }): Promise<Record<string, string>> {
  return { licenseA: await createLicense(pool, fixtures.customerA) };
}

/** A queued task for a fresh agent of customer A. */
async function taskOfA(ctx: { pool: Pool; fixtures: Fixtures }): Promise<Record<string, string>> {
  const { agentA } = await agentOfA(ctx);
  const { rows } = await ctx.pool.query<{ id: string }>(
    `INSERT INTO tasks (id, agent_id, license_id, customer_id, kind, payload, created_by_kind, created_by_id, created_at, updated_at)
     SELECT $1, a.id, a.license_id, a.customer_id, 'echo', '{}', 'admin', 'adm_authzmatrix000000000', now(), now() FROM agents a WHERE a.id = $2
     RETURNING id`,
    [newId('tsk'), agentA],
  );
  return { agentA: agentA!, taskA: rows[0]!.id };
}

/** An unused activation token for a fresh license of customer A (written directly; only its hash matters). */
async function activationTokenOfA(ctx: { pool: Pool; fixtures: Fixtures }): Promise<Record<string, string>> {
  const { licenseA } = await licenseOfA(ctx);
  const tokenA = newId('tok');
  await ctx.pool.query(
    `INSERT INTO activation_tokens (id, license_id, customer_id, token_hash, created_by_kind, created_by_id, expires_at)
     VALUES ($1, $2, $3, $4, 'admin', 'adm_authzmatrix000000000', now() + interval '1 day')`,
    [tokenA, licenseA, ctx.fixtures.customerA, createHash('sha256').update(tokenA).digest('hex')],
  );
  return { licenseA: licenseA!, tokenA };
}

export const AUTHZ_ROWS: AuthzRow[] = [
  // health, docs, well-known (foundation)
  pub('GET /livez'),
  pub('GET /readyz'),
  // Test configs set METRICS_TOKEN: no principal's credential is that token, so every one gets 401
  // (test/integration/metrics-access.test.ts tries the token, and the 404 without one).
  pub('GET /metrics', 401),
  pub('GET /docs'),
  pub('GET /docs/json'),
  pub('GET /docs/yaml'),
  pub('GET /docs/static/index.html', 302),
  pub('GET /docs/static/swagger-initializer.js'),
  pub('GET /docs/static/*', 200, { path: '/docs/static/swagger-ui.css' }),
  pub('GET /.well-known/security.txt'),
  pub('GET /.well-known/agentina-keys.json'),
  // web UI (the matrix test builds it first)
  pub('GET /'),
  pub('GET /portal'),
  pub('GET /assets/*', 404, { path: '/assets/no-such-file.js' }),

  // identity: admin auth
  pub('POST /v1/admin/login', 400),
  allow('POST /v1/admin/logout', ADMIN),
  allow('GET /v1/admin/me', ADMIN),
  allow('POST /v1/admin/me/password', ADMIN_400),
  // identity: portal auth
  pub('POST /v1/portal/login', 400),
  allow('POST /v1/portal/logout', PORTAL),
  allow('GET /v1/portal/me', PORTAL),
  allow('POST /v1/portal/me/password', { customerA: 400, customerB: 400 }),
  // identity: admins
  allow('GET /v1/admin/admins', ADMIN),
  allow('POST /v1/admin/admins', ADMIN_400),
  allow('POST /v1/admin/admins/:id/deactivate', ADMIN, { path: '/v1/admin/admins/{spareAdmin}/deactivate' }),
  allow('POST /v1/admin/admins/:id/reactivate', ADMIN, { path: '/v1/admin/admins/{spareAdmin}/reactivate' }),
  allow('POST /v1/admin/admins/:id/unlock', ADMIN, { path: '/v1/admin/admins/{spareAdmin}/unlock' }),
  // identity: customers and their users
  allow('GET /v1/admin/customers', ADMIN_SERVICE),
  allow('POST /v1/admin/customers', ADMIN_SERVICE_400),
  allow('GET /v1/admin/customers/:id', ADMIN_SERVICE, { path: '/v1/admin/customers/{customerA}' }),
  allow('POST /v1/admin/customers/:id/deactivate', ADMIN_SERVICE, {
    path: '/v1/admin/customers/{spareCustomer}/deactivate',
  }),
  allow('GET /v1/admin/customers/:id/users', ADMIN_SERVICE, { path: '/v1/admin/customers/{customerA}/users' }),
  allow('POST /v1/admin/customers/:id/users', ADMIN_SERVICE_400, { path: '/v1/admin/customers/{customerA}/users' }),
  allow('POST /v1/admin/customers/:id/users/:userId/deactivate', ADMIN_SERVICE, {
    path: '/v1/admin/customers/{customerA}/users/{spareUserA}/deactivate',
  }),
  allow('POST /v1/admin/customers/:id/users/:userId/reactivate', ADMIN_SERVICE, {
    path: '/v1/admin/customers/{customerA}/users/{spareUserA}/reactivate',
  }),
  allow('POST /v1/admin/customers/:id/users/:userId/unlock', ADMIN, {
    path: '/v1/admin/customers/{customerA}/users/{spareUserA}/unlock',
  }),
  // identity: service accounts
  allow('GET /v1/admin/service-accounts', ADMIN),
  allow('POST /v1/admin/service-accounts', ADMIN_400),
  allow('POST /v1/admin/service-accounts/:id/revoke', ADMIN, {
    path: '/v1/admin/service-accounts/{spareServiceAccount}/revoke',
  }),
  // agents (issue 7, control-plane side)
  allow('GET /v1/admin/agents', ADMIN),
  allow('GET /v1/admin/agents/:id', ADMIN, { path: '/v1/admin/agents/{agentA}', setup: agentOfA }),
  allow(
    'POST /v1/admin/agents/:id/release',
    { admin: 409 },
    { path: '/v1/admin/agents/{agentA}/release', setup: agentOfA },
  ),
  allow('POST /v1/admin/agents/:id/deregister', ADMIN, {
    path: '/v1/admin/agents/{agentA}/deregister',
    setup: agentOfA,
  }),
  allow('GET /v1/portal/agents', PORTAL),
  allow(
    'GET /v1/portal/agents/:id',
    { customerA: 200, customerB: 404 },
    { path: '/v1/portal/agents/{agentA}', setup: agentOfA },
  ),
  allow(
    'POST /v1/portal/agents/:id/deregister',
    { customerA: 200, customerB: 404 },
    { path: '/v1/portal/agents/{agentA}/deregister', setup: agentOfA },
  ),
  // tasks
  allow('GET /v1/admin/tasks', ADMIN),
  allow('POST /v1/admin/tasks', ADMIN_400),
  allow('GET /v1/admin/tasks/:id', ADMIN, { path: '/v1/admin/tasks/{taskA}', setup: taskOfA }),
  allow('POST /v1/admin/tasks/:id/cancel', ADMIN, { path: '/v1/admin/tasks/{taskA}/cancel', setup: taskOfA }),
  allow('GET /v1/portal/tasks', PORTAL),
  allow('POST /v1/portal/tasks', { customerA: 400, customerB: 400 }),
  allow(
    'GET /v1/portal/tasks/:id',
    { customerA: 200, customerB: 404 },
    { path: '/v1/portal/tasks/{taskA}', setup: taskOfA },
  ),
  allow(
    'POST /v1/portal/tasks/:id/cancel',
    { customerA: 200, customerB: 404 },
    { path: '/v1/portal/tasks/{taskA}/cancel', setup: taskOfA },
  ),
  // licenses (issue 6, part A): changes are refused at validation here (no worker runs), which
  // proves the caller got past access control; the lifecycle itself is tested in license-*.test.ts.
  allow('POST /v1/admin/licenses', ADMIN_SERVICE_400),
  allow('GET /v1/admin/licenses', ADMIN_SERVICE),
  allow('GET /v1/admin/licenses/:id', ADMIN_SERVICE, { path: '/v1/admin/licenses/{licenseA}', setup: licenseOfA }),
  allow('POST /v1/admin/licenses/:id/renew', ADMIN_SERVICE_400, {
    path: '/v1/admin/licenses/{licenseA}/renew',
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/licenses/:id/convert-trial', ADMIN_SERVICE_400, {
    path: '/v1/admin/licenses/{licenseA}/convert-trial',
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/licenses/:id/suspend', ADMIN_SERVICE_400, {
    path: '/v1/admin/licenses/{licenseA}/suspend',
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/licenses/:id/resume', ADMIN_SERVICE_400, {
    path: '/v1/admin/licenses/{licenseA}/resume',
    body: { unexpected: true },
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/licenses/:id/revoke', ADMIN_SERVICE_400, {
    path: '/v1/admin/licenses/{licenseA}/revoke',
    setup: licenseOfA,
  }),
  allow('GET /v1/portal/licenses', PORTAL),
  allow(
    'GET /v1/portal/licenses/:id',
    { customerA: 200, customerB: 404 },
    { path: '/v1/portal/licenses/{licenseA}', setup: licenseOfA },
  ),
  // signed documents: an unknown license, so no signing key is needed here (test/integration/license-documents.test.ts signs)
  allow(
    'GET /v1/admin/licenses/:id/document',
    { admin: 404, service: 404 },
    { path: '/v1/admin/licenses/lic_authzmatrixnosuchlicense/document' },
  ),
  allow(
    'GET /v1/portal/licenses/:id/document',
    { customerA: 404, customerB: 404 },
    { path: '/v1/portal/licenses/lic_authzmatrixnosuchlicense/document' },
  ),
  // activation tokens (the agent side, /v1/agent/activate, is public and tested with the agent routes)
  allow('POST /v1/admin/activation-tokens', ADMIN_SERVICE_400),
  allow('GET /v1/admin/activation-tokens', ADMIN_SERVICE),
  allow('GET /v1/admin/activation-tokens/:id', ADMIN_SERVICE, {
    path: '/v1/admin/activation-tokens/{tokenA}',
    setup: activationTokenOfA,
  }),
  allow('POST /v1/admin/activation-tokens/:id/revoke', ADMIN_SERVICE_400, {
    path: '/v1/admin/activation-tokens/{tokenA}/revoke',
    body: { unexpected: true },
    setup: activationTokenOfA,
  }),
  allow('POST /v1/portal/activation-tokens', { customerA: 400, customerB: 400 }),
  allow('GET /v1/portal/activation-tokens', PORTAL),
  allow(
    'GET /v1/portal/activation-tokens/:id',
    { customerA: 200, customerB: 404 },
    { path: '/v1/portal/activation-tokens/{tokenA}', setup: activationTokenOfA },
  ),
  allow(
    'POST /v1/portal/activation-tokens/:id/revoke',
    { customerA: 200, customerB: 404 },
    { path: '/v1/portal/activation-tokens/{tokenA}/revoke', setup: activationTokenOfA },
  ),
  // releases
  allow('GET /v1/admin/releases', ADMIN),
  allow('POST /v1/admin/releases', ADMIN_SERVICE_400),
  // the release repository (TUF): anonymous by design; a file that is not there is a 404 for everyone
  pub('GET /v1/dist/metadata/:file', 404, { path: '/v1/dist/metadata/999.root.json' }),
  pub('GET /v1/dist/targets/:file', 404, { path: `/v1/dist/targets/${'0'.repeat(64)}.agentina-agent-0.0.1.tar.gz` }),
  // audit ledger: admins and service accounts (an auditor's script) may read
  allow('GET /v1/admin/audit', ADMIN_SERVICE),
  allow('GET /v1/admin/overview', ADMIN_SERVICE),
  allow('GET /v1/admin/audit/verify', ADMIN_SERVICE),
  allow('GET /v1/admin/audit/export', ADMIN_SERVICE, { path: '/v1/admin/audit/export?format=jsonl' }),
  // the agent API: only an agent credential gets through (the agent principal is a fresh agent per call)
  pub('POST /v1/agent/activate', 400),
  allow('GET /v1/agent/status', { agent: 200 }),
  allow('GET /v1/agent/revocations', { agent: 200 }),
  allow('GET /v1/agent/tasks/next', { agent: 200 }),
  allow(
    'POST /v1/agent/tasks/:id/result',
    { agent: 404 },
    { path: '/v1/agent/tasks/tsk_authzmatrixnosuchtask00/result', body: { outcome: 'succeeded' } },
  ),
  allow('GET /v1/agent/releases/latest', { agent: 404 }),
  allow('POST /v1/agent/heartbeat', { agent: 400 }),
  allow('POST /v1/agent/deregister', { agent: 200 }),
];

/**
 * Routes whose rows their areas still owe (added at integration): `METHOD /exact` or
 * `METHOD /prefix*`, METHOD may be `*`. While an entry is listed its routes may lack rows;
 * delete it once the rows exist. Empty = every registered route must have a row.
 */
export const AWAITING_ROWS: string[] = [];

function awaited(route: RegisteredRoute): boolean {
  return AWAITING_ROWS.some((entry) => {
    const [method, pattern] = entry.split(' ') as [string, string];
    if (method !== '*' && method !== route.method) return false;
    return route.url === pattern || (pattern.endsWith('*') && route.url.startsWith(pattern.slice(0, -1)));
  });
}

/** `METHOD url` of registered routes without a row (and not awaited), and of rows without a route. */
export function coverageGaps(
  routes: RegisteredRoute[],
  rows: AuthzRow[] = AUTHZ_ROWS,
): { missingRows: string[]; staleRows: string[] } {
  const key = (r: { method: string; url: string }) => `${r.method} ${r.url}`;
  const rowKeys = new Set(rows.map(key));
  const routeKeys = new Set(routes.map(key));
  return {
    missingRows: routes.filter((r) => !rowKeys.has(key(r)) && !awaited(r)).map(key),
    staleRows: rows.filter((r) => !routeKeys.has(key(r))).map(key),
  };
}

/**
 * A starting line for a missing row, from the route's declared access (who gets past access
 * control). Review it: the right status for an allowed caller, params and cross-tenant 404s are
 * the row author's call.
 */
export function suggestRow(route: RegisteredRoute): string {
  const kinds: Record<string, PrincipalName[]> = {
    admin: ['admin'],
    customer: ['customerA', 'customerB'],
    service: ['service'],
  };
  if (route.access.includes('anonymous')) return `pub('${route.method} ${route.url}'),`;
  const allowed = route.access.flatMap((k) => kinds[k] ?? []).map((p) => `${p}: 200`);
  const path = route.url.includes(':') ? `, { path: '${route.url.replace(/:(\w+)/g, '{$1}')}' }` : '';
  return `allow('${route.method} ${route.url}', { ${allowed.join(', ')} }${path}),`;
}
