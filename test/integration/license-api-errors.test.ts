import { createTemporal } from '../../services/temporal';
import { freePort } from '../../scripts/stack/ports';
import { buildTestApp, testConfig } from '../support/app';
import type { TestDatabase } from '../support/db';
import { useLicenseApiSuite } from '../support/license-api-suite';
import { createTestCustomer, licenseAudit } from '../support/license-helpers';

/**
 * The license API through app.inject(), on real PostgreSQL and the real Temporal dev server: what it
 * refuses, and who may call it. The happy path is in license-api.test.ts.
 */
describe('license API', () => {
  const suite = useLicenseApiSuite('licapierr');
  const { call, create, future, principals } = suite;
  let db: TestDatabase;
  let keys: { dir: string };
  let customerA: string;
  let customerB: string;

  beforeAll(() => {
    db = suite.stack.db;
    keys = { dir: suite.stack.keysDir };
    ({ customerA, customerB } = suite);
  });

  describe('errors', () => {
    it.each([
      [
        'unknown field',
        { customerId: 'cus_aaaaaaaaaaaaaaaaaaaa', plan: 'p', maxAgents: 1, term: { days: 1 }, admin: true },
      ],
      [
        'both trial and term',
        { customerId: 'cus_aaaaaaaaaaaaaaaaaaaa', plan: 'p', maxAgents: 1, term: { days: 1 }, trial: { days: 1 } },
      ],
      ['neither trial nor term', { customerId: 'cus_aaaaaaaaaaaaaaaaaaaa', plan: 'p', maxAgents: 1 }],
      ['maxAgents 0', { customerId: 'cus_aaaaaaaaaaaaaaaaaaaa', plan: 'p', maxAgents: 0, term: { days: 1 } }],
      [
        'plan too long',
        { customerId: 'cus_aaaaaaaaaaaaaaaaaaaa', plan: 'p'.repeat(101), maxAgents: 1, term: { days: 1 } },
      ],
      [
        'grace days negative',
        { customerId: 'cus_aaaaaaaaaaaaaaaaaaaa', plan: 'p', maxAgents: 1, term: { days: 1 }, graceDays: -1 },
      ],
      ['bad customer id', { customerId: 'nope', plan: 'p', maxAgents: 1, term: { days: 1 } }],
      [
        'bad feature name',
        {
          customerId: 'cus_aaaaaaaaaaaaaaaaaaaa',
          plan: 'p',
          maxAgents: 1,
          term: { days: 1 },
          features: { 'Bad Name': 1 },
        },
      ],
    ])('create refuses %s with 400', async (_name, body) => {
      const res = await call('admin', 'POST', '/v1/admin/licenses', body);
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'VALIDATION_FAILED', requestId: expect.any(String) });
    });

    it('create: both days and a date, or an end in the past → 400; unknown customer → 404', async () => {
      const both = await call('admin', 'POST', '/v1/admin/licenses', {
        customerId: customerA,
        plan: 'p',
        maxAgents: 1,
        term: { days: 3, expiresAt: future(5) },
      });
      expect(both.statusCode).toBe(400);
      const past = await call('admin', 'POST', '/v1/admin/licenses', {
        customerId: customerA,
        plan: 'p',
        maxAgents: 1,
        term: { expiresAt: future(-1) },
      });
      expect(past.statusCode).toBe(400);
      const unknown = await call('admin', 'POST', '/v1/admin/licenses', {
        customerId: 'cus_doesnotexist00000000',
        plan: 'p',
        maxAgents: 1,
        term: { days: 3 },
      });
      expect(unknown.statusCode).toBe(404);
    });

    it('a deactivated customer → 409, and nothing is written', async () => {
      const gone = await createTestCustomer(db.pool, 'Deactivated customer');
      await db.pool.query('UPDATE customers SET active = false, deactivated_at = now() WHERE id = $1', [gone]);
      const id = 'lic_fordeactivatedcustomer01';
      const res = await call('admin', 'POST', '/v1/admin/licenses', {
        id,
        customerId: gone,
        plan: 'p',
        maxAgents: 1,
        term: { days: 3 },
      });
      expect(res.statusCode).toBe(409);
      expect(res.json().error).toMatchObject({ code: 'CONFLICT', message: `Customer ${gone} is deactivated.` });
      expect((await db.pool.query('SELECT id FROM licenses WHERE customer_id = $1', [gone])).rows).toEqual([]);
      expect(await licenseAudit(db.pool, id)).toEqual([]);
    });

    it('a license id reused for another customer is a 409, not a takeover', async () => {
      const lic = await create({ term: { days: 3 } });
      const res = await call('admin', 'POST', '/v1/admin/licenses', {
        id: lic.id,
        customerId: customerB,
        plan: 'p',
        maxAgents: 1,
        term: { days: 3 },
      });
      expect(res.statusCode).toBe(409);
    });

    it('refused transitions are 409 with the reason; bad dates are 400; renewal after revoke is refused', async () => {
      const lic = await create({ term: { days: 30 } });
      const resume = await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/resume`, {});
      expect(resume.statusCode).toBe(409);
      expect(resume.json().error).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/not suspended/) });
      expect(
        (await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/convert-trial`, { expiresAt: future(90) }))
          .statusCode,
      ).toBe(409);
      const past = await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/renew`, { expiresAt: future(-2) });
      expect(past.statusCode).toBe(400);
      expect(past.json().error.message).toMatch(/future/);
      expect(
        (await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/renew`, { expiresAt: 'tomorrow' })).statusCode,
      ).toBe(400);
      expect((await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/suspend`, { reason: '' })).statusCode).toBe(
        400,
      );
      expect((await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/revoke`, { reason: 'done' })).statusCode).toBe(
        200,
      );
      const renew = await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/renew`, { expiresAt: future(90) });
      expect(renew.statusCode).toBe(409);
      expect(renew.json().error.message).toMatch(/revoked/);
      const row = await db.pool.query('SELECT state, version FROM licenses WHERE id = $1', [lic.id]);
      expect(row.rows[0]).toEqual({ state: 'revoked', version: '2' });
    });

    it('Temporal unreachable: a change is a 503 in the one error shape, GET still answers from the row', async () => {
      const lic = await create({ term: { days: 30 } });
      const deadPort = await freePort();
      const dead = createTemporal(testConfig({ TEMPORAL_ADDRESS: `127.0.0.1:${deadPort}` }));
      const down = await buildTestApp({
        pool: db.pool,
        temporal: dead,
        config: testConfig({ TEMPORAL_ADDRESS: `127.0.0.1:${deadPort}`, AGENTINA_KEYS_DIR: keys.dir }),
        authenticate: async () => principals.admin!,
      });
      try {
        const res = await down.app.inject({
          method: 'POST',
          url: `/v1/admin/licenses/${lic.id}/suspend`,
          payload: { reason: 'x' },
        });
        expect(res.statusCode).toBe(503);
        expect(res.json().error).toMatchObject({
          code: 'UNAVAILABLE',
          message: expect.stringMatching(/did not answer/),
        });
        expect(res.body).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);
        const get = await down.app.inject({ method: 'GET', url: `/v1/admin/licenses/${lic.id}` });
        expect(get.statusCode).toBe(200);
        expect(get.json()).toMatchObject({ license: { id: lic.id, state: 'active' }, workflow: { current: null } });
        // No run id to be had: the link opens the workflow id's latest run.
        expect(get.json().workflow.url).toMatch(new RegExp(`/workflows/license%2F${lic.id}$`));
      } finally {
        await down.close();
        await dead.close();
      }
      expect((await db.pool.query('SELECT version FROM licenses WHERE id = $1', [lic.id])).rows[0]).toEqual({
        version: '1',
      });
    });

    it('unknown license 404, malformed id 400, bad cursor 400', async () => {
      expect((await call('admin', 'GET', '/v1/admin/licenses/lic_doesnotexist000000000')).statusCode).toBe(404);
      expect(
        (await call('admin', 'POST', '/v1/admin/licenses/lic_doesnotexist000000000/revoke', { reason: 'x' }))
          .statusCode,
      ).toBe(404);
      expect((await call('admin', 'GET', '/v1/admin/licenses/not-an-id')).statusCode).toBe(400);
      expect((await call('admin', 'GET', '/v1/admin/licenses?cursor=garbage')).statusCode).toBe(400);
      expect((await call('admin', 'GET', '/v1/admin/licenses?limit=1000')).statusCode).toBe(400);
    });
  });

  describe('security', () => {
    // Three entries each: jest would take a missing third argument for a done() callback.
    const adminRoutes: Array<['GET' | 'POST', string, unknown]> = [
      [
        'POST',
        '/v1/admin/licenses',
        { customerId: 'cus_aaaaaaaaaaaaaaaaaaaa', plan: 'p', maxAgents: 1, term: { days: 1 } },
      ],
      ['GET', '/v1/admin/licenses', undefined],
      ['GET', '/v1/admin/licenses/lic_aaaaaaaaaaaaaaaaaaaa', undefined],
      ['POST', '/v1/admin/licenses/lic_aaaaaaaaaaaaaaaaaaaa/renew', { expiresAt: '2099-01-01T00:00:00Z' }],
      ['POST', '/v1/admin/licenses/lic_aaaaaaaaaaaaaaaaaaaa/convert-trial', { expiresAt: '2099-01-01T00:00:00Z' }],
      ['POST', '/v1/admin/licenses/lic_aaaaaaaaaaaaaaaaaaaa/suspend', { reason: 'x' }],
      ['POST', '/v1/admin/licenses/lic_aaaaaaaaaaaaaaaaaaaa/resume', {}],
      ['POST', '/v1/admin/licenses/lic_aaaaaaaaaaaaaaaaaaaa/revoke', { reason: 'x' }],
    ];

    it.each(adminRoutes)('%s %s: anonymous 401, customer and agent 403', async (method, url, body) => {
      expect((await call(null, method, url, body)).statusCode).toBe(401);
      expect((await call('customerA', method, url, body)).statusCode).toBe(403);
      expect((await call('agent', method, url, body)).statusCode).toBe(403);
    });

    it('a service account may create; the audit names it as system', async () => {
      const lic = await create({ term: { days: 10 } }, 'service');
      const audit = await licenseAudit(db.pool, lic.id);
      expect(audit[0]).toMatchObject({
        action: 'license.created',
        actor_kind: 'system',
        actor_id: 'svcacct_licenseapitester01',
      });
    });

    it("portal: a customer sees only its own licenses; another customer's is a 404", async () => {
      const mine = await create({ customerId: customerB, term: { days: 10 } });
      const theirs = await create({ customerId: customerA, term: { days: 10 } });
      const list = await call('customerB', 'GET', '/v1/portal/licenses');
      expect(list.statusCode).toBe(200);
      const ids = list.json().items.map((x: { id: string; customerId: string }) => x.id);
      expect(ids).toContain(mine.id);
      expect(ids).not.toContain(theirs.id);
      expect(list.json().items.every((x: { customerId: string }) => x.customerId === customerB)).toBe(true);
      // A customerId in the query cannot widen the view.
      expect((await call('customerB', 'GET', `/v1/portal/licenses?customerId=${customerA}`)).statusCode).toBe(400);
      expect((await call('customerB', 'GET', `/v1/portal/licenses/${mine.id}`)).statusCode).toBe(200);
      const other = await call('customerB', 'GET', `/v1/portal/licenses/${theirs.id}`);
      expect(other.statusCode).toBe(404);
      expect(other.json().error.code).toBe('NOT_FOUND');
      expect((await call(null, 'GET', '/v1/portal/licenses')).statusCode).toBe(401);
      expect((await call('admin', 'GET', '/v1/portal/licenses')).statusCode).toBe(403);
    });
  });
});
