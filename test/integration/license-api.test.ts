import { licenseWorkflowId } from '../../workflows/license-contract';
import type { TestDatabase } from '../support/db';
import type { LicenseApiStack } from '../support/license-api-stack';
import { useLicenseApiSuite } from '../support/license-api-suite';
import { createTestCustomer, licenseAudit } from '../support/license-helpers';
import type { TestTemporal } from '../support/temporal';

/**
 * The license API through app.inject(), on real PostgreSQL and the real Temporal dev server: the
 * happy path. Refusals and access control are in license-api-errors.test.ts.
 */
describe('license API', () => {
  const suite = useLicenseApiSuite('licapi');
  const { call, create, future, uiUrl } = suite;
  let db: TestDatabase;
  let t: TestTemporal;
  let harness: LicenseApiStack;
  let customerA: string;

  beforeAll(() => {
    ({ db, t } = suite.stack);
    harness = suite.stack;
    customerA = suite.customerA;
  });

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
});
