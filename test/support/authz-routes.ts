import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import type { RegisteredRoute, RoutePermission } from '../../api/auth/access';
import { ADMIN_ROLES, newId, roleGrants } from '../../protocol';
import { createAgent, createLicense } from './agent-server-fixtures';

/**
 * The authorization matrix: one row per registered route, saying what each principal gets.
 * test/integration/authz-matrix.test.ts calls every route with every principal and fails on any
 * difference, on any registered route without a row, and on any row without a route.
 *
 * Adding a route = adding one line here, e.g.
 *   allow('GET /v1/admin/things', { ...ROLES_SERVICE }, 'things:read'),
 *   allow('GET /v1/portal/things/:id', { customerA: 200, customerB: 404 }, { path: '/v1/portal/things/{thingA}', setup: makeThingForA }),
 * Principals left out of `allow` get the denial: 401 when their credential is not valid
 * (anonymous, deactivated admin, revoked or expired service token), 403 when it is of the wrong
 * kind, or an admin whose role does not grant the route's permission. Another customer's resource
 * is a 404, never a 403.
 *
 * `admin` is an owner; `operator` and `viewer` are admins of those roles; `service` holds every
 * scope a token may. A route open to admins or tokens names the permission it needs (the third
 * argument): the matrix test checks the route declares exactly that, that a token holding only
 * that scope gets what `service` gets, and that a token holding every other scope gets a 403
 * naming it.
 */
export const PRINCIPALS = [
  'anonymous',
  'admin',
  'operator',
  'viewer',
  'deactivatedAdmin',
  'customerA',
  'customerB',
  'service',
  'revokedService',
  'expiredService',
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
  /** What an admin or service caller needs here (routes open to them only). */
  need?: RoutePermission;
  setup?: RowSetup;
};

const INVALID_CREDENTIAL: ReadonlySet<PrincipalName> = new Set([
  'anonymous',
  'deactivatedAdmin',
  'revokedService',
  'expiredService',
]);

type RowOptions = { path?: string; body?: unknown; setup?: RowSetup };

function parse(route: string): { method: string; url: string } {
  const [method, url] = route.split(' ');
  if (!method || !url) throw new Error(`route must read "METHOD /path": ${route}`);
  return { method, url };
}

/** Only the listed principals get through, with the given status; the rest are refused. */
export function allow(
  route: string,
  allowed: Partial<Record<PrincipalName, number>>,
  needOrOpts: RoutePermission | RowOptions = {},
  moreOpts: RowOptions = {},
): AuthzRow {
  const need = typeof needOrOpts === 'string' ? needOrOpts : undefined;
  const opts = typeof needOrOpts === 'string' ? moreOpts : needOrOpts;
  const { method, url } = parse(route);
  const expect = Object.fromEntries(
    PRINCIPALS.map((p) => [p, allowed[p] ?? (INVALID_CREDENTIAL.has(p) ? 401 : 403)]),
  ) as Record<PrincipalName, number>;
  return {
    method,
    url,
    path: opts.path ?? url,
    expect,
    ...(need ? { need } : {}),
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    ...(opts.setup ? { setup: opts.setup } : {}),
  };
}

/** A public route: every principal gets `status`. */
export function pub(route: string, status = 200, opts: RowOptions = {}): AuthzRow {
  return allow(route, Object.fromEntries(PRINCIPALS.map((p) => [p, status])), opts);
}

/** Owners only (admins, service tokens, policies). */
const OWNER = { admin: 200 };
/** Every admin role (reads, and one's own account). */
const ROLES = { admin: 200, operator: 200, viewer: 200 };
const ROLES_SERVICE = { ...ROLES, service: 200 };
/** Owners and operators (licenses, customers, agents, tasks). */
const OPERATORS = { admin: 200, operator: 200 };
const OPERATORS_SERVICE = { ...OPERATORS, service: 200 };
/** A change the owner (called first) makes to the row's one resource; the others find it made. */
const AFTER_THE_OWNER = { admin: 200, operator: 409, service: 409 };
const PORTAL = { customerA: 200, customerB: 200 };
/** Authorized callers whose `{}` body is rejected: proves they got past access control. */
const OWNER_400 = { admin: 400 };
const ROLES_400 = { admin: 400, operator: 400, viewer: 400 };
const OPERATORS_SERVICE_400 = { admin: 400, operator: 400, service: 400 };

/** A fresh agent of customer A (its own license), so rows that change it do not affect others. */
async function agentOfA({ pool, fixtures }: { pool: Pool; fixtures: Fixtures }): Promise<Record<string, string>> {
  const licenseId = await createLicense(pool, fixtures.customerA);
  return { agentA: (await createAgent(pool, licenseId, fixtures.customerA)).agentId };
}

/** A fresh license of customer A. */
async function licenseOfA({ pool, fixtures }: { pool: Pool; fixtures: Fixtures }): Promise<Record<string, string>> {
  return { licenseA: await createLicense(pool, fixtures.customerA) };
}

/** A fresh policy (version 1), so rows that change it do not affect others. */
async function policyOfAdmin({ pool }: { pool: Pool }): Promise<Record<string, string>> {
  const id = newId('pol');
  await pool.query(`INSERT INTO policies (id, name, created_at, updated_at) VALUES ($1, $1, now(), now())`, [id]);
  await pool.query(
    `INSERT INTO policy_versions (policy_id, version, name, plan, kind, duration_days, grace_days, trial_end_state,
       max_agents, features, seat_reclaim_days, update_policy, created_at, created_by_kind, created_by_id)
     VALUES ($1, 1, $1, 'standard', 'term', 30, 7, 'expired', 5, '{}', 14, 'automatic', now(), 'admin', 'adm_matrix')`,
    [id],
  );
  return { policyA: id };
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

/** A webhook endpoint (written directly; its sealed secret is never opened by these rows). */
async function webhookEndpoint({ pool }: { pool: Pool }): Promise<Record<string, string>> {
  const id = newId('whk');
  await pool.query(
    `INSERT INTO webhook_endpoints (id, url, events, enabled, secret_sealed, created_by_kind, created_by_id, created_at, updated_at)
     VALUES ($1, 'https://receiver.example/hook', '{license.revoked}', true, 'sealed', 'admin', 'adm_authzmatrix000000000', now(), now())`,
    [id],
  );
  return { webhook: id };
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
  allow('POST /v1/admin/logout', ROLES, 'own-account'),
  allow('GET /v1/admin/me', ROLES, 'own-account'),
  allow('POST /v1/admin/me/password', ROLES_400, 'own-account'),
  // identity: portal auth
  pub('POST /v1/portal/login', 400),
  allow('POST /v1/portal/logout', PORTAL),
  allow('GET /v1/portal/me', PORTAL),
  allow('POST /v1/portal/me/password', { customerA: 400, customerB: 400 }),
  allow('GET /v1/portal/me/totp', PORTAL),
  allow('POST /v1/portal/me/totp', { customerA: 201, customerB: 201 }),
  allow('POST /v1/portal/me/totp/confirm', { customerA: 400, customerB: 400 }),
  // identity: admins
  allow('GET /v1/admin/admins', ROLES, 'admins:read'),
  allow('POST /v1/admin/admins', OWNER_400, 'admins:write'),
  allow('POST /v1/admin/admins/:id/deactivate', OWNER, 'admins:write', {
    path: '/v1/admin/admins/{spareAdmin}/deactivate',
  }),
  allow('POST /v1/admin/admins/:id/reactivate', OWNER, 'admins:write', {
    path: '/v1/admin/admins/{spareAdmin}/reactivate',
  }),
  allow('POST /v1/admin/admins/:id/unlock', OWNER, 'admins:write', { path: '/v1/admin/admins/{spareAdmin}/unlock' }),
  allow('POST /v1/admin/admins/:id/role', OWNER_400, 'admins:write', { path: '/v1/admin/admins/{spareAdmin}/role' }),
  // identity: second factors (each role's own; the policy and resets are owners')
  allow('GET /v1/admin/me/totp', ROLES, 'own-account'),
  allow('POST /v1/admin/me/totp', { admin: 201, operator: 201, viewer: 201 }, 'own-account'),
  allow('POST /v1/admin/me/totp/confirm', ROLES_400, 'own-account'),
  allow('POST /v1/admin/admins/:id/totp/reset', OWNER, 'admins:write', {
    path: '/v1/admin/admins/{spareAdmin}/totp/reset',
  }),
  allow('GET /v1/admin/totp-policy', ROLES, 'admins:read'),
  allow('POST /v1/admin/totp-policy', OWNER_400, 'admins:write'),
  // identity: customers and their users
  allow('GET /v1/admin/customers', ROLES_SERVICE, 'customers:read'),
  allow('POST /v1/admin/customers', OPERATORS_SERVICE_400, 'customers:write'),
  allow('GET /v1/admin/customers/:id', ROLES_SERVICE, 'customers:read', { path: '/v1/admin/customers/{customerA}' }),
  allow('POST /v1/admin/customers/:id/deactivate', OPERATORS_SERVICE, 'customers:write', {
    path: '/v1/admin/customers/{spareCustomer}/deactivate',
  }),
  allow('GET /v1/admin/customers/:id/users', ROLES_SERVICE, 'customers:read', {
    path: '/v1/admin/customers/{customerA}/users',
  }),
  allow('POST /v1/admin/customers/:id/users', OPERATORS_SERVICE_400, 'customers:write', {
    path: '/v1/admin/customers/{customerA}/users',
  }),
  allow('POST /v1/admin/customers/:id/users/:userId/deactivate', OPERATORS_SERVICE, 'customers:write', {
    path: '/v1/admin/customers/{customerA}/users/{spareUserA}/deactivate',
  }),
  allow('POST /v1/admin/customers/:id/users/:userId/reactivate', OPERATORS_SERVICE, 'customers:write', {
    path: '/v1/admin/customers/{customerA}/users/{spareUserA}/reactivate',
  }),
  allow('POST /v1/admin/customers/:id/users/:userId/unlock', OPERATORS, 'customers:write', {
    path: '/v1/admin/customers/{customerA}/users/{spareUserA}/unlock',
  }),
  // identity: service accounts
  allow('GET /v1/admin/service-accounts', ROLES, 'admins:read'),
  allow('POST /v1/admin/service-accounts', OWNER_400, 'admins:write'),
  allow('POST /v1/admin/service-accounts/:id/revoke', OWNER, 'admins:write', {
    path: '/v1/admin/service-accounts/{spareServiceAccount}/revoke',
  }),
  // agents (issue 7, control-plane side)
  allow('GET /v1/admin/agents', ROLES_SERVICE, 'agents:read'),
  allow('GET /v1/admin/agents/:id', ROLES_SERVICE, 'agents:read', {
    path: '/v1/admin/agents/{agentA}',
    setup: agentOfA,
  }),
  allow('POST /v1/admin/agents/:id/release', { admin: 409, operator: 409 }, 'agents:write', {
    path: '/v1/admin/agents/{agentA}/release',
    setup: agentOfA,
  }),
  // No release 999.0.0 is published: callers past access control get its 404.
  allow('POST /v1/admin/agents/:id/update', { admin: 404, operator: 404 }, 'agents:write', {
    path: '/v1/admin/agents/{agentA}/update',
    body: { version: '999.0.0' },
    setup: agentOfA,
  }),
  // Update policy per agent and per license: readable by every role and service tokens; set by
  // owners and operators (an empty body gets past access control to its 400).
  ...(
    [
      ['agents', 'agentA', agentOfA],
      ['licenses', 'licenseA', licenseOfA],
    ] as const
  ).flatMap(([resource, fixture, setup]) => [
    allow(`GET /v1/admin/${resource}/:id/update-policy`, ROLES_SERVICE, `${resource}:read`, {
      path: `/v1/admin/${resource}/{${fixture}}/update-policy`,
      setup,
    }),
    allow(`PUT /v1/admin/${resource}/:id/update-policy`, { admin: 400, operator: 400 }, `${resource}:write`, {
      path: `/v1/admin/${resource}/{${fixture}}/update-policy`,
      setup,
    }),
  ]),
  // One agent per row: the owner (called first) deregisters it, later callers get past access
  // control and find it done (409).
  allow('POST /v1/admin/agents/:id/deregister', AFTER_THE_OWNER, 'agents:write', {
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
  allow('GET /v1/admin/tasks', ROLES_SERVICE, 'tasks:read'),
  allow('POST /v1/admin/tasks', OPERATORS_SERVICE_400, 'tasks:write'),
  allow('GET /v1/admin/tasks/:id', ROLES_SERVICE, 'tasks:read', { path: '/v1/admin/tasks/{taskA}', setup: taskOfA }),
  allow('POST /v1/admin/tasks/:id/cancel', AFTER_THE_OWNER, 'tasks:write', {
    path: '/v1/admin/tasks/{taskA}/cancel',
    setup: taskOfA,
  }),
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
  allow('POST /v1/admin/licenses', OPERATORS_SERVICE_400, 'licenses:write'),
  allow('GET /v1/admin/licenses', ROLES_SERVICE, 'licenses:read'),
  allow('GET /v1/admin/licenses/:id', ROLES_SERVICE, 'licenses:read', {
    path: '/v1/admin/licenses/{licenseA}',
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/licenses/:id/renew', OPERATORS_SERVICE_400, 'licenses:write', {
    path: '/v1/admin/licenses/{licenseA}/renew',
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/licenses/:id/convert-trial', OPERATORS_SERVICE_400, 'licenses:write', {
    path: '/v1/admin/licenses/{licenseA}/convert-trial',
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/licenses/:id/suspend', OPERATORS_SERVICE_400, 'licenses:write', {
    path: '/v1/admin/licenses/{licenseA}/suspend',
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/licenses/:id/resume', OPERATORS_SERVICE_400, 'licenses:write', {
    path: '/v1/admin/licenses/{licenseA}/resume',
    body: { unexpected: true },
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/licenses/:id/revoke', OPERATORS_SERVICE_400, 'licenses:write', {
    path: '/v1/admin/licenses/{licenseA}/revoke',
    setup: licenseOfA,
  }),
  // Terms and policies (issue 15): admins whose role may change licenses; a service token may not rewrite what a customer bought.
  allow('PATCH /v1/admin/licenses/:id', { admin: 400, operator: 400 }, 'licenses:write', {
    path: '/v1/admin/licenses/{licenseA}',
    setup: licenseOfA,
  }),
  allow('POST /v1/admin/policies', { admin: 400, operator: 400 }, 'licenses:write'),
  allow('GET /v1/admin/policies', ROLES, 'licenses:read'),
  allow('GET /v1/admin/policies/:id', ROLES, 'licenses:read', {
    path: '/v1/admin/policies/{policyA}',
    setup: policyOfAdmin,
  }),
  allow('PATCH /v1/admin/policies/:id', { admin: 400, operator: 400 }, 'licenses:write', {
    path: '/v1/admin/policies/{policyA}',
    setup: policyOfAdmin,
  }),
  allow('POST /v1/admin/policies/:id/archive', { admin: 400, operator: 400 }, 'licenses:write', {
    path: '/v1/admin/policies/{policyA}/archive',
    body: { unexpected: true },
    setup: policyOfAdmin,
  }),
  allow('POST /v1/admin/policies/:id/apply', { admin: 400, operator: 400 }, 'licenses:write', {
    path: '/v1/admin/policies/{policyA}/apply',
    body: { unexpected: true },
    setup: policyOfAdmin,
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
    { admin: 404, operator: 404, viewer: 404, service: 404 },
    'licenses:read',
    { path: '/v1/admin/licenses/lic_authzmatrixnosuchlicense/document' },
  ),
  allow(
    'GET /v1/portal/licenses/:id/document',
    { customerA: 404, customerB: 404 },
    { path: '/v1/portal/licenses/lic_authzmatrixnosuchlicense/document' },
  ),
  // activation tokens (the agent side, /v1/agent/activate, is public and tested with the agent routes)
  allow('POST /v1/admin/activation-tokens', OPERATORS_SERVICE_400, 'licenses:write'),
  allow('POST /v1/admin/activation-tokens/offline-response', OPERATORS_SERVICE_400, 'licenses:write'),
  allow('POST /v1/admin/agents/:id/status-file', OPERATORS_SERVICE_400, 'agents:write', {
    path: '/v1/admin/agents/{agentA}/status-file',
    setup: agentOfA,
  }),
  allow('GET /v1/admin/activation-tokens', ROLES_SERVICE, 'licenses:read'),
  allow('GET /v1/admin/activation-tokens/:id', ROLES_SERVICE, 'licenses:read', {
    path: '/v1/admin/activation-tokens/{tokenA}',
    setup: activationTokenOfA,
  }),
  allow('POST /v1/admin/activation-tokens/:id/revoke', OPERATORS_SERVICE_400, 'licenses:write', {
    path: '/v1/admin/activation-tokens/{tokenA}/revoke',
    body: { unexpected: true },
    setup: activationTokenOfA,
  }),
  allow('POST /v1/portal/activation-tokens', { customerA: 400, customerB: 400 }),
  allow('POST /v1/portal/activation-tokens/offline-response', { customerA: 400, customerB: 400 }),
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
  allow('GET /v1/admin/releases', ROLES_SERVICE, 'releases:read'),
  allow('POST /v1/admin/releases', { admin: 400, service: 400 }, 'releases:write'),
  // No release 9.9.9 is published: callers past access control get its 404.
  allow('POST /v1/admin/releases/:version/yank', { admin: 404, service: 404 }, 'releases:write', {
    path: '/v1/admin/releases/9.9.9/yank',
  }),
  // the release repository (TUF): anonymous by design; a file that is not there is a 404 for everyone
  pub('GET /v1/dist/metadata/:file', 404, { path: '/v1/dist/metadata/999.root.json' }),
  pub('GET /v1/dist/targets/:file', 404, { path: `/v1/dist/targets/${'0'.repeat(64)}.agentina-agent-0.0.1.tar.gz` }),
  // webhooks: admins only (a customer or a service token may not manage them); only owners change them
  allow('POST /v1/admin/webhooks', { admin: 400 }, 'webhooks:write'),
  allow('GET /v1/admin/webhooks', ROLES, 'webhooks:read'),
  allow('GET /v1/admin/webhooks/:id', ROLES, 'webhooks:read', {
    path: '/v1/admin/webhooks/{webhook}',
    setup: webhookEndpoint,
  }),
  allow('PATCH /v1/admin/webhooks/:id', OWNER, 'webhooks:write', {
    path: '/v1/admin/webhooks/{webhook}',
    setup: webhookEndpoint,
  }),
  allow('POST /v1/admin/webhooks/:id/rotate-secret', OWNER, 'webhooks:write', {
    path: '/v1/admin/webhooks/{webhook}/rotate-secret',
    setup: webhookEndpoint,
  }),
  allow('GET /v1/admin/webhooks/:id/deliveries', ROLES, 'webhooks:read', {
    path: '/v1/admin/webhooks/{webhook}/deliveries',
    setup: webhookEndpoint,
  }),
  allow('POST /v1/admin/webhooks/:id/deliveries/:eventId/redeliver', { admin: 404 }, 'webhooks:write', {
    path: '/v1/admin/webhooks/{webhook}/deliveries/msg_1/redeliver',
    setup: webhookEndpoint,
  }),
  // audit ledger: admins and service accounts (an auditor's script) may read
  allow('GET /v1/admin/audit', ROLES_SERVICE, 'audit:read'),
  allow('GET /v1/admin/overview', ROLES_SERVICE, 'licenses:read'),
  allow('GET /v1/admin/audit/verify', ROLES_SERVICE, 'audit:read'),
  allow('GET /v1/admin/audit/export', ROLES_SERVICE, 'audit:read', { path: '/v1/admin/audit/export?format=jsonl' }),
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
  const need = route.permission;
  const roles = ADMIN_ROLES.filter((r) => need === 'own-account' || (need !== undefined && roleGrants(r, need)));
  const kinds: Record<string, PrincipalName[]> = {
    admin: roles.map((r) => (r === 'owner' ? 'admin' : r)),
    customer: ['customerA', 'customerB'],
    service: ['service'],
  };
  if (route.access.includes('anonymous')) return `pub('${route.method} ${route.url}'),`;
  const allowed = route.access.flatMap((k) => kinds[k] ?? []).map((p) => `${p}: 200`);
  const needArg = need ? `, '${need}'` : '';
  const path = route.url.includes(':') ? `, { path: '${route.url.replace(/:(\w+)/g, '{$1}')}' }` : '';
  return `allow('${route.method} ${route.url}', { ${allowed.join(', ')} }${needArg}${path}),`;
}
