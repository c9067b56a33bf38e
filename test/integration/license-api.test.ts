import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../api/auth/access';
import { createTemporal } from '../../services/temporal';
import { freePort } from '../../scripts/stack/ports';
import { systemClock } from '../../protocol';
import { licenseWorkflowId } from '../../workflows/license-contract';
import { buildTestApp, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import { createTestCustomer, createTestKeysDir, licenseAudit } from '../support/license-helpers';
import { connectTestTemporal, type TestTemporal, runTestWorker } from '../support/temporal';

/** The license API through app.inject(), on real PostgreSQL and the real Temporal dev server. */
describe('license API', () => {
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let stopWorker: () => Promise<void>;
  let harness: Awaited<ReturnType<typeof buildTestApp>>;
  let customerA: string;
  let customerB: string;
  const principals: Record<string, Principal> = {};
  const uiUrl = 'http://temporal-ui.example:8233';

  beforeAll(async () => {
    db = await createTestDatabase('licapi');
    t = await connectTestTemporal('licapi');
    keys = createTestKeysDir();
    customerA = await createTestCustomer(db.pool, 'Customer A');
    customerB = await createTestCustomer(db.pool, 'Customer B');
    principals.admin = { kind: 'admin', id: 'adm_licenseapitester0001', sessionId: 's1' };
    principals.service = { kind: 'service', id: 'svcacct_licenseapitester01' };
    principals.customerA = { kind: 'customer', id: 'usr_customeraaaaaaaaaaaa', customerId: customerA, sessionId: 's2' };
    principals.customerB = { kind: 'customer', id: 'usr_customerbbbbbbbbbbbb', customerId: customerB, sessionId: 's3' };
    principals.agent = {
      kind: 'agent',
      id: 'agt_agentaaaaaaaaaaaaaaaa',
      licenseId: 'lic_xxxxxxxxxxxxxxxxxxxx',
      customerId: customerA,
    };
    stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
    const config = testConfig({
      TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
      TEMPORAL_TASK_QUEUE: t.taskQueue,
      TEMPORAL_UI_URL: uiUrl,
      AGENTINA_KEYS_DIR: keys.dir,
    });
    const authenticate = async (req: FastifyRequest): Promise<Principal | null> =>
      principals[String(req.headers['x-test-as'] ?? '')] ?? null;
    harness = await buildTestApp({ pool: db.pool, config, authenticate });
  });

  afterAll(async () => {
    await harness?.close();
    await stopWorker?.();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  const call = (as: string | null, method: 'GET' | 'POST', url: string, payload?: unknown) =>
    harness.app.inject({
      method,
      url,
      ...(as ? { headers: { 'x-test-as': as } } : {}),
      ...(payload !== undefined ? { payload: payload as object } : {}),
    });
  const future = (days: number) => new Date(Date.now() + days * 86400000).toISOString();
  const create = async (body: Record<string, unknown>, as = 'admin') => {
    const res = await call(as, 'POST', '/v1/admin/licenses', {
      customerId: customerA,
      plan: 'pro',
      maxAgents: 2,
      ...body,
    });
    expect(res.statusCode).toBe(201);
    return res.json().license as { id: string; state: string; version: number };
  };

  describe('happy path', () => {
    it('creates a trial, and a repeated create with the same id returns it without a twin', async () => {
      const id = 'lic_clientchosen0000000001';
      const body = {
        id,
        customerId: customerA,
        plan: 'pro',
        features: { seats: 10, sso: true },
        maxAgents: 5,
        trial: { days: 14 },
        graceDays: 3,
      };
      const first = await call('admin', 'POST', '/v1/admin/licenses', body);
      expect(first.statusCode).toBe(201);
      expect(first.json()).toMatchObject({
        created: true,
        license: {
          id,
          customerId: customerA,
          state: 'trial',
          version: 1,
          features: { seats: 10, sso: true },
          maxAgents: 5,
          graceDays: 3,
          trialEndState: 'expired',
        },
        workflow: {
          id: `license/${id}`,
          url: `${uiUrl}/namespaces/default/workflows/${encodeURIComponent(`license/${id}`)}`,
        },
      });
      const again = await call('admin', 'POST', '/v1/admin/licenses', body);
      expect(again.statusCode).toBe(200);
      expect(again.json()).toMatchObject({ created: false, license: { id, version: 1 } });
      expect((await licenseAudit(db.pool, id)).map((a) => a.action)).toEqual(['license.created']);
      const runs = [];
      for await (const w of t.client.workflow.list({ query: `WorkflowId = '${licenseWorkflowId(id)}'` }))
        runs.push(w.runId);
      expect(runs.length).toBeLessThanOrEqual(1);
      const described = await t.client.workflow.getHandle(licenseWorkflowId(id)).describe();
      expect(described.status.name).toBe('RUNNING');
    });

    it('GET shows the row, the workflow state from its query, and the Temporal Web link', async () => {
      const lic = await create({ term: { days: 365 }, graceDays: 7 });
      const res = await call('admin', 'GET', `/v1/admin/licenses/${lic.id}`);
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.license).toMatchObject({ id: lic.id, state: 'active', version: 1 });
      expect(body.workflow.current).toMatchObject({
        licenseId: lic.id,
        state: 'active',
        version: 1,
        nextTransitionAt: body.license.expiresAt,
      });
      // The exact run, as Temporal describes it, not whichever run is latest when the link is opened.
      const { runId } = await t.client.workflow.getHandle(`license/${lic.id}`).describe();
      expect(body.workflow.url).toBe(`${uiUrl}/namespaces/default/workflows/license%2F${lic.id}/${runId}/history`);
    });

    it('GET lists the changes the lifecycle accepts in this state, with the reason for the others', async () => {
      const allowedOf = async (id: string) => {
        const actions: Array<{ action: string; allowed: boolean; reason: string | null }> = (
          await call('admin', 'GET', `/v1/admin/licenses/${id}`)
        ).json().actions;
        return {
          allowed: actions.filter((a) => a.allowed).map((a) => a.action),
          refused: Object.fromEntries(actions.filter((a) => !a.allowed).map((a) => [a.action, a.reason])),
        };
      };
      const lic = await create({ term: { days: 30 } });
      const active = await allowedOf(lic.id);
      expect(active.allowed).toEqual(['renew', 'suspend', 'revoke', 'changeTerms']);
      expect(active.refused).toEqual({
        convertTrial: expect.stringMatching(/not a trial/),
        resume: expect.stringMatching(/not suspended/),
      });
      // What it advertises as refused, the API refuses; what it offers, the API does.
      expect((await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/resume`, {})).statusCode).toBe(409);
      await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/suspend`, { reason: 'overdue' });
      expect((await allowedOf(lic.id)).allowed).toEqual(['renew', 'resume', 'revoke', 'changeTerms']);
      await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/revoke`, { reason: 'contract ended' });
      const revoked = await allowedOf(lic.id);
      expect(revoked.allowed).toEqual([]);
      expect(revoked.refused.revoke).toMatch(/already revoked/);
      expect(revoked.refused.changeTerms).toMatch(/revoked; its terms cannot be changed/);
      const trial = await create({ trial: { days: 14 } });
      expect((await allowedOf(trial.id)).allowed).toEqual(['convertTrial', 'suspend', 'revoke', 'changeTerms']);
    });

    it('suspend, resume, renew and revoke all go through the workflow and are audited with the actor', async () => {
      const lic = await create({ term: { days: 30 } });
      const s = await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/suspend`, { reason: 'invoice overdue' });
      expect(s.statusCode).toBe(200);
      expect(s.json()).toMatchObject({
        license: { state: 'suspended', version: 2, stateReason: 'invoice overdue' },
        workflow: { state: 'suspended', version: 2 },
      });
      const r = await call('service', 'POST', `/v1/admin/licenses/${lic.id}/resume`, {});
      expect(r.json()).toMatchObject({ license: { state: 'active', version: 3 } });
      const expiresAt = future(400);
      const n = await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/renew`, { expiresAt });
      expect(n.json()).toMatchObject({ license: { state: 'active', version: 4, expiresAt } });
      const v = await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/revoke`, { reason: 'contract ended' });
      expect(v.json()).toMatchObject({ license: { state: 'revoked', version: 5, stateReason: 'contract ended' } });
      const audit = await licenseAudit(db.pool, lic.id);
      expect(audit.map((a) => [a.action, a.actor_kind, a.actor_id])).toEqual([
        ['license.created', 'admin', 'adm_licenseapitester0001'],
        ['license.suspended', 'admin', 'adm_licenseapitester0001'],
        ['license.resumed', 'system', 'svcacct_licenseapitester01'],
        ['license.renewed', 'admin', 'adm_licenseapitester0001'],
        ['license.revoked', 'admin', 'adm_licenseapitester0001'],
      ]);
      const feed = await db.pool.query('SELECT state, version FROM status_feed WHERE license_id = $1 ORDER BY id', [
        lic.id,
      ]);
      expect(feed.rows.map((x) => `${x.state}@${x.version}`)).toEqual([
        'suspended@2',
        'active@3',
        'active@4',
        'revoked@5',
      ]);
    });

    it('a change repeated with the same Idempotency-Key is applied once', async () => {
      const lic = await create({ term: { days: 30 } });
      const send = () =>
        harness.app.inject({
          method: 'POST',
          url: `/v1/admin/licenses/${lic.id}/suspend`,
          headers: { 'x-test-as': 'admin', 'idempotency-key': 'retry-key-0001' },
          payload: { reason: 'overdue' },
        });
      const first = await send();
      const second = await send();
      expect([first.statusCode, second.statusCode]).toEqual([200, 200]);
      expect(second.json().license).toMatchObject({ state: 'suspended', version: 2 });
      expect((await licenseAudit(db.pool, lic.id)).map((a) => a.action)).toEqual([
        'license.created',
        'license.suspended',
      ]);
      const bad = await harness.app.inject({
        method: 'POST',
        url: `/v1/admin/licenses/${lic.id}/resume`,
        headers: { 'x-test-as': 'admin', 'idempotency-key': 'no spaces allowed' },
        payload: {},
      });
      expect(bad.statusCode).toBe(400);
    });

    it('the routes are in the OpenAPI document', async () => {
      const res = await call(null, 'GET', '/docs/json');
      expect(res.statusCode).toBe(200);
      const paths = Object.keys(res.json().paths);
      for (const p of [
        '/v1/admin/licenses',
        '/v1/admin/licenses/{id}',
        '/v1/admin/licenses/{id}/renew',
        '/v1/admin/licenses/{id}/convert-trial',
        '/v1/admin/licenses/{id}/suspend',
        '/v1/admin/licenses/{id}/resume',
        '/v1/admin/licenses/{id}/revoke',
        '/v1/portal/licenses',
        '/v1/portal/licenses/{id}',
      ]) {
        expect(paths).toContain(p);
      }
    });

    it('converts a trial', async () => {
      const lic = await create({ trial: { days: 14 } });
      const expiresAt = future(365);
      const res = await call('admin', 'POST', `/v1/admin/licenses/${lic.id}/convert-trial`, { expiresAt });
      expect(res.statusCode).toBe(200);
      expect(res.json().license).toMatchObject({ state: 'active', trialEndsAt: null, expiresAt });
    });

    it('lists with customer and state filters, paginated by cursor', async () => {
      const customer = await createTestCustomer(db.pool, 'List customer');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await create({ customerId: customer, term: { days: 30 } })).id);
      await call('admin', 'POST', `/v1/admin/licenses/${ids[0]}/suspend`, { reason: 'x' });
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const res = await call(
          'admin',
          'GET',
          `/v1/admin/licenses?customerId=${customer}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        expect(res.statusCode).toBe(200);
        const body = res.json();
        expect(body.items.length).toBeLessThanOrEqual(2);
        seen.push(...body.items.map((x: { id: string }) => x.id));
        cursor = body.nextCursor;
      } while (cursor);
      expect(seen.sort()).toEqual([...ids].sort());
      const suspended = await call('admin', 'GET', `/v1/admin/licenses?customerId=${customer}&state=suspended`);
      expect(suspended.json().items.map((x: { id: string }) => x.id)).toEqual([ids[0]]);
    });
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
