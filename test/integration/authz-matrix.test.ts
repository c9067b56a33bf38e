import type { App } from '../../api/app';
import { registeredRoutes } from '../../api/auth/access';
import { createIdentityService } from '../../services/identity/identity-service';
import { createPasswordHasher } from '../../services/identity/passwords';
import { buildTestApp } from '../support/app';
import {
  AUTHZ_ROWS,
  PRINCIPALS,
  coverageGaps,
  suggestRow,
  type AuthzRow,
  type Fixtures,
  type PrincipalName,
} from '../support/authz-routes';
import { createAgentWithLicense } from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { buildWebOnce } from '../support/web-stack';
import { SERVICE_SCOPES, type ServiceScope } from '../../protocol';
import {
  SAME_ORIGIN,
  mintSession,
  nextIp,
  seedAdmin,
  seedCustomer,
  seedCustomerUser,
  seedServiceAccount,
} from '../support/identity';

/** Every registered route × every principal, against test/support/authz-routes.ts. */
describe('authorization matrix', () => {
  let db: TestDatabase;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let app: App;
  let fixtures: Fixtures;
  let credentials: Record<PrincipalName, () => Promise<Record<string, string>>>;

  beforeAll(async () => {
    db = await createTestDatabase('authz');
    await buildWebOnce();
    t = await buildTestApp({ pool: db.pool });
    app = t.app;

    const admin = await seedAdmin(db.pool, { cheap: true });
    const operator = await seedAdmin(db.pool, { cheap: true, role: 'operator' });
    const viewer = await seedAdmin(db.pool, { cheap: true, role: 'viewer' });
    const goneAdmin = await seedAdmin(db.pool, { cheap: true });
    const spareAdmin = await seedAdmin(db.pool, { cheap: true });
    const customerA = await seedCustomer(db.pool, 'Customer A');
    const customerB = await seedCustomer(db.pool, 'Customer B');
    const spareCustomer = await seedCustomer(db.pool, 'Spare');
    const userA = await seedCustomerUser(db.pool, customerA.id, { cheap: true });
    const userB = await seedCustomerUser(db.pool, customerB.id, { cheap: true });
    const spareUserA = await seedCustomerUser(db.pool, customerA.id, { cheap: true });
    const service = await seedServiceAccount(db.pool);
    const revoked = await seedServiceAccount(db.pool, { revoked: true });
    const expired = await seedServiceAccount(db.pool, { expiresAt: new Date(Date.now() - 1000) });
    const spareService = await seedServiceAccount(db.pool);

    // The deactivated admin had a live session; deactivation (the real path) ended it.
    const gone = await mintSession(db.pool, 'admin', goneAdmin);
    await createIdentityService({
      pool: db.pool,
      clock: { now: () => new Date() },
      passwords: createPasswordHasher(),
    }).setAdminActive({ kind: 'admin', id: admin.id, sessionId: 'ses_none' }, goneAdmin.id, false);

    fixtures = {
      admin: admin.id,
      customerA: customerA.id,
      customerB: customerB.id,
      userA: userA.id,
      userB: userB.id,
      spareAdmin: spareAdmin.id,
      spareCustomer: spareCustomer.id,
      spareUserA: spareUserA.id,
      spareServiceAccount: spareService.id,
    };
    // Cookie principals get a fresh session per call, so a row such as logout cannot spoil the next.
    credentials = {
      anonymous: async () => ({}),
      admin: async () => ({ cookie: (await mintSession(db.pool, 'admin', admin)).cookie }),
      operator: async () => ({ cookie: (await mintSession(db.pool, 'admin', operator)).cookie }),
      viewer: async () => ({ cookie: (await mintSession(db.pool, 'admin', viewer)).cookie }),
      deactivatedAdmin: async () => ({ cookie: gone.cookie }),
      customerA: async () => ({ cookie: (await mintSession(db.pool, 'customer', userA)).cookie }),
      customerB: async () => ({ cookie: (await mintSession(db.pool, 'customer', userB)).cookie }),
      service: async () => ({ authorization: `Bearer ${service.token}` }),
      revokedService: async () => ({ authorization: `Bearer ${revoked.token}` }),
      expiredService: async () => ({ authorization: `Bearer ${expired.token}` }),
      agent: async () => ({ authorization: `Bearer ${(await createAgentWithLicense(db.pool)).credential}` }),
    };
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('has a row for every registered route, and a route for every row', () => {
    const routes = registeredRoutes(app);
    const gaps = coverageGaps(routes);
    if (gaps.missingRows.length) {
      const lines = routes.filter((r) => gaps.missingRows.includes(`${r.method} ${r.url}`)).map(suggestRow);
      process.stderr.write(
        `authz matrix: rows to review and add to test/support/authz-routes.ts:\n  ${lines.join('\n  ')}\n`,
      );
    }
    expect(gaps).toEqual({ missingRows: [], staleRows: [] });
  });

  it('a route registered without a row fails the coverage check', async () => {
    const extra = await buildTestApp({
      pool: db.pool,
      register: (a) => {
        a.get('/v1/admin/unlisted-thing', { config: { access: ['admin'], permission: 'audit:read' } }, async () => ({
          ok: true,
        }));
      },
    });
    try {
      const routes = registeredRoutes(extra.app);
      expect(coverageGaps(routes).missingRows).toEqual(['GET /v1/admin/unlisted-thing']);
      expect(suggestRow(routes.find((r) => r.url === '/v1/admin/unlisted-thing')!)).toBe(
        "allow('GET /v1/admin/unlisted-thing', { admin: 200, operator: 200, viewer: 200 }, 'audit:read'),",
      );
    } finally {
      await extra.close();
    }
  });

  async function call(
    row: AuthzRow,
    principal: PrincipalName | { token: string },
    vars: Record<string, string>,
  ): Promise<{ status: number; message?: string }> {
    const url = row.path.replace(/\{(\w+)\}/g, (_, name: string) => {
      const v = vars[name];
      if (v === undefined) throw new Error(`no fixture {${name}} for ${row.method} ${row.url}`);
      return v;
    });
    const creds =
      typeof principal === 'string' ? await credentials[principal]() : { authorization: `Bearer ${principal.token}` };
    const unsafe = !['GET', 'HEAD', 'OPTIONS'].includes(row.method);
    const headers: Record<string, string> = {
      ...creds,
      ...(creds.cookie ? { 'sec-fetch-site': SAME_ORIGIN['sec-fetch-site'] } : {}),
    };
    if (unsafe) headers['content-type'] = 'application/json';
    const res = await app.inject({
      method: row.method as 'GET',
      url,
      headers,
      remoteAddress: nextIp(),
      ...(unsafe ? { payload: JSON.stringify(row.body ?? {}) } : {}),
    });
    const json = res.headers['content-type']?.toString().startsWith('application/json');
    return {
      status: res.statusCode,
      ...(json ? { message: res.json<{ error?: { message?: string } }>().error?.message } : {}),
    };
  }

  it('answers every route with the expected status for every principal', async () => {
    const mismatches: string[] = [];
    for (const row of AUTHZ_ROWS) {
      const vars = { ...fixtures, ...(row.setup ? await row.setup({ pool: db.pool, fixtures }) : {}) };
      for (const principal of PRINCIPALS) {
        const got = (await call(row, principal, vars)).status;
        if (got !== row.expect[principal])
          mismatches.push(`${row.method} ${row.url} as ${principal}: expected ${row.expect[principal]}, got ${got}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('every admin or service route declares the permission its row names', () => {
    const declared = new Map(registeredRoutes(app).map((r) => [`${r.method} ${r.url}`, r.permission]));
    const wrong = AUTHZ_ROWS.filter((row) => declared.get(`${row.method} ${row.url}`) !== row.need).map(
      (row) => `${row.method} ${row.url}: row says ${row.need}, route says ${declared.get(`${row.method} ${row.url}`)}`,
    );
    expect(wrong).toEqual([]);
  });

  // The row's own setup runs once here, so a token with only the scope must get past access
  // control (not 401/403); what it then gets is the main table's business.
  it('a token with only the scope a route needs gets through; one with every other scope gets a 403 naming it', async () => {
    const mismatches: string[] = [];
    const tokenRows = AUTHZ_ROWS.filter((r) => r.need && r.expect.service !== 403);
    expect(tokenRows.length).toBeGreaterThan(20);
    for (const row of tokenRows) {
      const need = row.need as ServiceScope;
      const only = await seedServiceAccount(db.pool, { scopes: [need] });
      const lacking = await seedServiceAccount(db.pool, { scopes: SERVICE_SCOPES.filter((s) => s !== need) });
      const vars = { ...fixtures, ...(row.setup ? await row.setup({ pool: db.pool, fixtures }) : {}) };
      const without = await call(row, { token: lacking.token }, vars);
      const withOnly = await call(row, { token: only.token }, vars);
      if (withOnly.status === 401 || withOnly.status === 403)
        mismatches.push(`${row.method} ${row.url} with only ${need}: got ${withOnly.status} ${withOnly.message}`);
      if (without.status !== 403 || !without.message?.includes(`lacks the scope ${need}`))
        mismatches.push(`${row.method} ${row.url} without ${need}: got ${without.status} ${without.message}`);
    }
    expect(mismatches).toEqual([]);
  });
});
