import type { Principal } from '../../api/auth/access';
import { createAgent } from '../support/agent-server-fixtures';
import { createTestCustomer, licenseAudit, licenseFeed } from '../support/license-helpers';
import { startLicenseApiStack, type LicenseApiStack } from '../support/license-api-stack';

/**
 * Changing a license's terms (PATCH /v1/admin/licenses/:id) and policies (/v1/admin/policies),
 * through app.inject() on real PostgreSQL and the real Temporal dev server with a real worker.
 */
describe('license terms and policies', () => {
  let stack: LicenseApiStack;
  let customerId: string;
  const principals: Record<string, Principal> = {};
  const db = {
    get pool() {
      return stack.db.pool;
    },
  };

  beforeAll(async () => {
    stack = await startLicenseApiStack('licterms', principals);
    customerId = await createTestCustomer(db.pool, 'Terms customer');
    principals.admin = { kind: 'admin', id: 'adm_termstester000000001', sessionId: 's1' };
    principals.service = { kind: 'service', id: 'svcacct_termstester000001' };
    principals.customer = { kind: 'customer', id: 'usr_termscustomer0000001', customerId, sessionId: 's2' };
    principals.agent = {
      kind: 'agent',
      id: 'agt_termsagent0000000001',
      licenseId: 'lic_termslicense00000001',
      customerId,
    };
  });

  afterAll(async () => {
    await stack?.close();
  });

  const call = (
    as: string | null,
    method: 'GET' | 'POST' | 'PATCH',
    url: string,
    payload?: unknown,
    headers: Record<string, string> = {},
  ) =>
    stack.app.inject({
      method,
      url,
      headers: { ...(as ? { 'x-test-as': as } : {}), ...headers },
      ...(payload !== undefined ? { payload: payload as object } : {}),
    });
  const patch = (id: string, body: unknown, headers: Record<string, string> = {}, as = 'admin') =>
    call(as, 'PATCH', `/v1/admin/licenses/${id}`, body, headers);
  async function newLicense(body: Record<string, unknown> = {}): Promise<string> {
    const res = await call('admin', 'POST', '/v1/admin/licenses', {
      customerId,
      plan: 'standard',
      maxAgents: 3,
      features: { sso: true },
      term: { days: 30 },
      ...body,
    });
    expect(res.statusCode).toBe(201);
    return res.json().license.id as string;
  }
  const seat = (licenseId: string, n: number) =>
    Promise.all(Array.from({ length: n }, () => createAgent(db.pool, licenseId, customerId)));
  const row = async (id: string) =>
    (
      await db.pool.query(
        `SELECT plan, features, max_agents, grace_days, state, version::int AS version, policy_id, policy_version
           FROM licenses WHERE id = $1`,
        [id],
      )
    ).rows[0] as Record<string, unknown>;

  describe('PATCH /v1/admin/licenses/:id', () => {
    it('changes plan, features and maxAgents through the lifecycle: the version rises, the audit has before and after', async () => {
      const id = await newLicense();
      const res = await patch(id, { plan: 'enterprise', features: { sso: true, 'tasks.per_day': 500 }, maxAgents: 10 });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        license: { plan: 'enterprise', features: { sso: true, 'tasks.per_day': 500 }, maxAgents: 10, version: 2 },
        workflow: { state: 'active', version: 2 },
      });
      const audit = await licenseAudit(db.pool, id);
      expect(audit.map((a) => [a.action, a.actor_kind, a.actor_id])).toEqual([
        ['license.created', 'admin', principals.admin!.id],
        ['license.terms_changed', 'admin', principals.admin!.id],
      ]);
      expect(audit[1]!.data).toMatchObject({
        from: 'active',
        to: 'active',
        version: 2,
        before: { plan: 'standard', features: { sso: true }, maxAgents: 3 },
        after: { plan: 'enterprise', features: { sso: true, 'tasks.per_day': 500 }, maxAgents: 10 },
      });
      // Fields left out of the patch are neither in the audit nor changed.
      expect(audit[1]!.data.before).not.toHaveProperty('graceDays');
      expect(await licenseFeed(db.pool, id)).toEqual([{ state: 'active', version: 2 }]);
      // The signed document is re-issued with the new terms and version.
      const doc = await call('admin', 'GET', `/v1/admin/licenses/${id}/document`);
      expect(doc.json().document).toMatchObject({ plan: 'enterprise', maxAgents: 10, version: 2 });
      // The portal shows the new terms.
      const mine = await call('customer', 'GET', `/v1/portal/licenses/${id}`);
      expect(mine.json().license).toMatchObject({ plan: 'enterprise', maxAgents: 10, version: 2 });
    });

    it('lowering maxAgents below the agents holding a seat is a 409 naming the count; to the count is fine', async () => {
      const id = await newLicense({ maxAgents: 5 });
      await seat(id, 3);
      const refused = await patch(id, { maxAgents: 2 });
      expect(refused.statusCode).toBe(409);
      expect(refused.json().error.message).toMatch(/has 3 active agent\(s\); maxAgents cannot be lowered to 2/);
      expect(await row(id)).toMatchObject({ max_agents: 5, version: 1 });
      expect((await patch(id, { maxAgents: 3 })).json().license).toMatchObject({ maxAgents: 3, version: 2 });
      // Deregistered agents hold no seat.
      await db.pool.query(`UPDATE agents SET status = 'deregistered' WHERE license_id = $1`, [id]);
      expect((await patch(id, { maxAgents: 1 })).statusCode).toBe(200);
    });

    it('a patch that changes nothing is a 400; a revoked license is a 409; an unknown license a 404', async () => {
      const id = await newLicense();
      const same = await patch(id, { plan: 'standard', maxAgents: 3, features: { sso: true } });
      expect(same.statusCode).toBe(400);
      expect(same.json().error.message).toMatch(/leaves the terms of license .* as they are/);
      expect(await row(id)).toMatchObject({ version: 1 });
      await call('admin', 'POST', `/v1/admin/licenses/${id}/revoke`, { reason: 'contract ended' });
      const revoked = await patch(id, { maxAgents: 9 });
      expect(revoked.statusCode).toBe(409);
      expect(revoked.json().error.message).toMatch(/revoked/);
      expect((await patch('lic_doesnotexist00000000', { maxAgents: 2 })).statusCode).toBe(404);
    });

    it('hostile bodies are 400 in the one error shape and change nothing', async () => {
      const id = await newLicense();
      const bodies: unknown[] = [
        {},
        { maxAgents: 0 },
        { maxAgents: 100001 },
        { maxAgents: 2.5 },
        { maxAgents: '5' },
        { graceDays: -1 },
        { graceDays: 366 },
        { plan: '' },
        { plan: '   ' },
        { plan: 'x'.repeat(101) },
        { plan: 'bad\u0000plan' },
        { plan: 'line\nbreak' },
        { features: { 'Bad Name': true } },
        { features: { ok: { nested: true } } },
        { features: { ok: 'x'.repeat(201) } },
        { features: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`f${i}`, true])) },
        { features: [] },
        { state: 'active' },
        { version: 99 },
        { policy: { id: 'pol_aaaaaaaaaaaaaaaaaaaaaa', version: 1 } },
        { expiresAt: '2099-01-01T00:00:00Z' },
        { __proto__: { maxAgents: 50 } },
        [{ maxAgents: 5 }],
        null,
        JSON.parse('{"maxAgents": 5, "__proto__": {"maxAgents": 50}}'),
      ];
      for (const body of bodies) {
        const res = await patch(id, body);
        expect([JSON.stringify(body).slice(0, 80), res.statusCode]).toEqual([JSON.stringify(body).slice(0, 80), 400]);
        expect(res.json()).toEqual({
          error: expect.objectContaining({ code: expect.any(String), message: expect.any(String) }),
        });
      }
      // Not JSON at all: refused in the same error shape.
      const text = await stack.app.inject({
        method: 'PATCH',
        url: `/v1/admin/licenses/${id}`,
        headers: { 'x-test-as': 'admin', 'content-type': 'text/plain' },
        payload: 'maxAgents=5',
      });
      expect([400, 415]).toContain(text.statusCode);
      expect(text.json().error.code).toEqual(expect.any(String));
      const huge = await patch(id, { plan: 'p', features: { a: 'x'.repeat(200) }, pad: 'y'.repeat(2_000_000) });
      expect([400, 413]).toContain(huge.statusCode);
      expect(await row(id)).toMatchObject({ plan: 'standard', max_agents: 3, version: 1 });
      expect((await licenseAudit(db.pool, id)).map((a) => a.action)).toEqual(['license.created']);
    });

    it('customers, agents and service tokens cannot patch; anonymous is a 401', async () => {
      const id = await newLicense();
      expect((await patch(id, { maxAgents: 50 }, {}, 'customer')).statusCode).toBe(403);
      expect((await patch(id, { maxAgents: 50 }, {}, 'agent')).statusCode).toBe(403);
      expect((await patch(id, { maxAgents: 50 }, {}, 'service')).statusCode).toBe(403);
      expect((await call(null, 'PATCH', `/v1/admin/licenses/${id}`, { maxAgents: 50 })).statusCode).toBe(401);
      // There is no portal route that changes terms at all.
      expect((await call('customer', 'PATCH', `/v1/portal/licenses/${id}`, { maxAgents: 50 })).statusCode).toBe(404);
      expect(await row(id)).toMatchObject({ max_agents: 3, version: 1 });
    });

    it('the same Idempotency-Key applies once; two PATCHes with different keys racing leave consecutive versions', async () => {
      const id = await newLicense();
      const key = { 'idempotency-key': 'terms-retry-0001' };
      const first = await patch(id, { maxAgents: 4 }, key);
      const again = await patch(id, { maxAgents: 4 }, key);
      expect([first.statusCode, again.statusCode]).toEqual([200, 200]);
      expect(again.json().license).toMatchObject({ maxAgents: 4, version: 2 });
      expect((await licenseAudit(db.pool, id)).filter((a) => a.action === 'license.terms_changed')).toHaveLength(1);

      const [a, b] = await Promise.all([
        patch(id, { maxAgents: 7, plan: 'gold' }, { 'idempotency-key': 'terms-race-a-0001' }),
        patch(id, { maxAgents: 8, graceDays: 3 }, { 'idempotency-key': 'terms-race-b-0001' }),
      ]);
      expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
      // Each answer shows the row after its own change (the other may have landed since).
      for (const r of [a, b]) expect(r.json().license.version).toBeGreaterThanOrEqual(3);
      // The changes were serialized: versions 3 and 4; whichever went last set maxAgents; both
      // other fields stuck; row, audit and feed agree.
      const changes = (await licenseAudit(db.pool, id)).filter((x) => x.action === 'license.terms_changed');
      expect(changes.map((x) => x.data.version)).toEqual([2, 3, 4]);
      const last = (changes[2]!.data.after as { maxAgents: number }).maxAgents;
      expect([7, 8]).toContain(last);
      expect(await row(id)).toMatchObject({ plan: 'gold', grace_days: 3, max_agents: last, version: 4 });
      expect((await licenseFeed(db.pool, id)).map((f) => f.version)).toEqual([2, 3, 4]);
    });

    it('racing an identical patch: one applies, the other finds nothing to change (400), the version rises once', async () => {
      const id = await newLicense();
      const results = await Promise.all([
        patch(id, { plan: 'platinum' }, { 'idempotency-key': 'same-race-a-0001' }),
        patch(id, { plan: 'platinum' }, { 'idempotency-key': 'same-race-b-0001' }),
      ]);
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 400]);
      expect(await row(id)).toMatchObject({ plan: 'platinum', version: 2 });
    });
  });

  describe('policies', () => {
    const policyBody = (name: string, extra: Record<string, unknown> = {}) => ({
      name,
      kind: 'term',
      durationDays: 90,
      graceDays: 5,
      maxAgents: 4,
      features: { sso: true },
      seatReclaimDays: 21,
      updatePolicy: 'manual',
      ...extra,
    });
    const createPolicy = async (name: string, extra: Record<string, unknown> = {}) => {
      const res = await call('admin', 'POST', '/v1/admin/policies', policyBody(name, extra));
      expect(res.statusCode).toBe(201);
      return res.json<{ id: string; version: number }>();
    };
    const policyAudit = async (id: string) =>
      (
        await db.pool.query<{ action: string; actor_kind: string; actor_id: string; data: Record<string, unknown> }>(
          `SELECT action, actor_kind, actor_id, data FROM audit_events WHERE subject_kind = 'policy' AND subject_id = $1 ORDER BY seq`,
          [id],
        )
      ).rows;

    it('create, list, get, update (a new version each time) and archive, each audited', async () => {
      const p = await createPolicy('Gold annual');
      expect(p).toMatchObject({
        version: 1,
        plan: 'Gold annual',
        kind: 'term',
        durationDays: 90,
        graceDays: 5,
        trialEndState: 'expired',
        maxAgents: 4,
        features: { sso: true },
        seatReclaimDays: 21,
        updatePolicy: 'manual',
        archivedAt: null,
        licenseCount: 0,
      });
      const dup = await call('admin', 'POST', '/v1/admin/policies', policyBody('gold ANNUAL'));
      expect(dup.statusCode).toBe(409);
      const upd = await call('admin', 'PATCH', `/v1/admin/policies/${p.id}`, { maxAgents: 6, seatReclaimDays: 0 });
      expect(upd.json()).toMatchObject({ version: 2, maxAgents: 6, seatReclaimDays: 0, graceDays: 5 });
      expect((await call('admin', 'PATCH', `/v1/admin/policies/${p.id}`, { maxAgents: 6 })).statusCode).toBe(400);
      const got = (await call('admin', 'GET', `/v1/admin/policies/${p.id}`)).json();
      expect(got.versions.map((v: { version: number; maxAgents: number }) => [v.version, v.maxAgents])).toEqual([
        [2, 6],
        [1, 4],
      ]);
      const list = (await call('admin', 'GET', '/v1/admin/policies')).json().items as Array<{ id: string }>;
      expect(list.map((x) => x.id)).toContain(p.id);
      expect((await call('admin', 'POST', `/v1/admin/policies/${p.id}/archive`, {})).json().archivedAt).toEqual(
        expect.any(String),
      );
      expect(
        (await call('admin', 'GET', '/v1/admin/policies')).json().items.map((x: { id: string }) => x.id),
      ).not.toContain(p.id);
      expect(
        (await call('admin', 'GET', '/v1/admin/policies?archived=true')).json().items.map((x: { id: string }) => x.id),
      ).toContain(p.id);
      expect((await call('admin', 'PATCH', `/v1/admin/policies/${p.id}`, { maxAgents: 9 })).statusCode).toBe(409);
      expect((await call('admin', 'POST', '/v1/admin/licenses', { customerId, policyId: p.id })).statusCode).toBe(409);
      // Versions are written once: the application's database role cannot rewrite one.
      await expect(
        db.pool.query('UPDATE policy_versions SET max_agents = 99 WHERE policy_id = $1', [p.id]),
      ).rejects.toThrow(/permission denied/);
      await expect(db.pool.query('DELETE FROM policies WHERE id = $1', [p.id])).rejects.toThrow(/permission denied/);
      // The name is free again once archived.
      expect((await call('admin', 'POST', '/v1/admin/policies', policyBody('Gold annual'))).statusCode).toBe(201);
      const audit = await policyAudit(p.id);
      expect(audit.map((a) => [a.action, a.actor_id])).toEqual([
        ['policy.created', principals.admin!.id],
        ['policy.updated', principals.admin!.id],
        ['policy.archived', principals.admin!.id],
      ]);
      expect(audit[1]!.data).toEqual({
        version: 2,
        before: { maxAgents: 4, seatReclaimDays: 21 },
        after: { maxAgents: 6, seatReclaimDays: 0 },
      });
    });

    it('entitlements follow one rule through policies and terms changes; a policy sets the seat-reclaim window', async () => {
      // A policy without features grants the default task kinds, written out, like a license without features.
      const plain = await createPolicy('Default grants', { features: undefined, seatReclaimDays: 3 });
      const fromPolicy = await call('admin', 'POST', '/v1/admin/licenses', { customerId, policyId: plain.id });
      expect(fromPolicy.statusCode).toBe(201);
      const id = fromPolicy.json().license.id as string;
      expect(await row(id)).toMatchObject({
        features: { 'tasks.echo': true, 'tasks.sleep': true, 'tasks.http_get': true },
      });
      const window = await db.pool.query(`SELECT seat_reclaim_days FROM licenses WHERE id = $1`, [id]);
      expect(window.rows[0].seat_reclaim_days).toBe(3);
      // Without a policy the window is the default.
      const bare = await newLicense();
      const bareWindow = await db.pool.query(`SELECT seat_reclaim_days FROM licenses WHERE id = $1`, [bare]);
      expect(bareWindow.rows[0].seat_reclaim_days).toBe(14);
      // A terms change naming only echo withdraws the kinds it does not name, explicitly.
      const changed = await patch(id, { features: { 'tasks.echo': true } });
      expect(changed.statusCode).toBe(200);
      expect((await row(id)).features).toEqual({ 'tasks.echo': true, 'tasks.sleep': false, 'tasks.http_get': false });
      const queued = await call('admin', 'POST', '/v1/admin/tasks', {
        agentId: (await seat(id, 1))[0]!.agentId,
        kind: 'http.get',
        payload: { url: 'https://example.test/' },
      });
      expect(queued.statusCode).toBe(403);
      expect(queued.json().error.message).toContain('tasks.http_get');
    });

    it('a license from a policy copies its values and records the version; explicit fields override', async () => {
      const p = await createPolicy('Trial 14', {
        kind: 'trial',
        durationDays: 14,
        trialEndState: 'grace',
        graceDays: 2,
      });
      const res = await call('admin', 'POST', '/v1/admin/licenses', { customerId, policyId: p.id });
      expect(res.statusCode).toBe(201);
      const l = res.json().license;
      expect(l).toMatchObject({
        plan: 'Trial 14',
        maxAgents: 4,
        features: { sso: true },
        graceDays: 2,
        trialEndState: 'grace',
        state: 'trial',
        policyId: p.id,
        policyVersion: 1,
      });
      expect(Date.parse(l.trialEndsAt) - Date.parse(l.createdAt)).toBeGreaterThan(13.9 * 86400000);
      const over = await call('admin', 'POST', '/v1/admin/licenses', {
        customerId,
        policyId: p.id,
        maxAgents: 12,
        plan: 'custom',
        term: { days: 365 },
      });
      expect(over.json().license).toMatchObject({
        plan: 'custom',
        maxAgents: 12,
        state: 'active',
        graceDays: 2,
        policyId: p.id,
      });
      expect((await licenseAudit(db.pool, l.id))[0]!.data).toMatchObject({ policyId: p.id, policyVersion: 1 });
      // Without a policy the plan, maxAgents and a length are required; an unknown policy is a 404.
      expect((await call('admin', 'POST', '/v1/admin/licenses', { customerId, term: { days: 3 } })).statusCode).toBe(
        400,
      );
      expect(
        (await call('admin', 'POST', '/v1/admin/licenses', { customerId, plan: 'x', maxAgents: 1 })).statusCode,
      ).toBe(400);
      expect(
        (await call('admin', 'POST', '/v1/admin/licenses', { customerId, policyId: 'pol_doesnotexist000000000' }))
          .statusCode,
      ).toBe(404);
      expect(
        (
          await call('admin', 'POST', '/v1/admin/licenses', {
            customerId,
            policyId: p.id,
            trial: { days: 3 },
            term: { days: 3 },
          })
        ).statusCode,
      ).toBe(400);
    });

    it('changing a policy changes no license; "apply" does, through each lifecycle, and lists refusals', async () => {
      const p = await createPolicy('Team', { maxAgents: 5 });
      const create = async () =>
        (await call('admin', 'POST', '/v1/admin/licenses', { customerId, policyId: p.id })).json().license.id as string;
      const [plain, crowded, revoked] = [await create(), await create(), await create()];
      await seat(crowded, 4);
      await call('admin', 'POST', `/v1/admin/licenses/${revoked}/revoke`, { reason: 'gone' });
      const hand = await newLicense(); // not of the policy: never touched

      const upd = await call('admin', 'PATCH', `/v1/admin/policies/${p.id}`, {
        maxAgents: 2,
        features: { sso: true, audit: true },
        plan: 'Team v2',
      });
      expect(upd.json().version).toBe(2);
      expect(await row(plain)).toMatchObject({ max_agents: 5, plan: 'Team', version: 1, policy_version: 1 });

      const applied = await call('admin', 'POST', `/v1/admin/policies/${p.id}/apply`, {});
      expect(applied.statusCode).toBe(200);
      const results = applied.json().results as Array<{ licenseId: string; outcome: string; message: string | null }>;
      expect(applied.json()).toMatchObject({ policyId: p.id, policyVersion: 2 });
      expect(Object.fromEntries(results.map((r) => [r.licenseId, r.outcome]))).toEqual({
        [plain]: 'changed',
        [crowded]: 'refused',
      });
      expect(results.find((r) => r.licenseId === crowded)!.message).toMatch(/has 4 active agent\(s\)/);
      expect(await row(plain)).toMatchObject({
        max_agents: 2,
        plan: 'Team v2',
        features: { sso: true, audit: true },
        version: 2,
        policy_version: 2,
      });
      expect(await row(crowded)).toMatchObject({ max_agents: 5, version: 1, policy_version: 1 });
      expect(await row(revoked)).toMatchObject({ state: 'revoked', policy_version: 1 });
      expect(await row(hand)).toMatchObject({ version: 1, policy_id: null });
      const change = (await licenseAudit(db.pool, plain)).at(-1)!;
      expect(change).toMatchObject({ action: 'license.terms_changed', actor_id: principals.admin!.id });
      expect(change.data.after).toMatchObject({ policy: { id: p.id, version: 2 }, maxAgents: 2 });
      const audit = (await policyAudit(p.id)).at(-1)!;
      expect(audit).toMatchObject({ action: 'policy.applied', actor_id: principals.admin!.id });
      expect(audit.data).toMatchObject({ version: 2, changed: 1, unchanged: 0, refused: [{ licenseId: crowded }] });

      // Applying again: the changed license is already on these terms.
      const again = (await call('admin', 'POST', `/v1/admin/policies/${p.id}/apply`, {})).json();
      expect(
        Object.fromEntries(again.results.map((r: { licenseId: string; outcome: string }) => [r.licenseId, r.outcome])),
      ).toEqual({
        [plain]: 'unchanged',
        [crowded]: 'refused',
      });
    });

    it('only admins reach policies; hostile bodies are 400', async () => {
      const p = await createPolicy('Locked');
      for (const as of ['customer', 'agent', 'service']) {
        expect((await call(as, 'GET', '/v1/admin/policies')).statusCode).toBe(403);
        expect((await call(as, 'POST', `/v1/admin/policies/${p.id}/apply`, {})).statusCode).toBe(403);
        expect((await call(as, 'PATCH', `/v1/admin/policies/${p.id}`, { maxAgents: 99 })).statusCode).toBe(403);
      }
      for (const body of [
        policyBody('t', { kind: 'trial', durationDays: 400 }),
        policyBody('t', { seatReclaimDays: -1 }),
        policyBody('t', { updatePolicy: 'whenever' }),
        policyBody('t', { name: '' }),
        policyBody('t', { name: 'a\u0007b' }),
        policyBody('t', { extra: 1 }),
        { name: 'missing terms' },
      ]) {
        expect((await call('admin', 'POST', '/v1/admin/policies', body)).statusCode).toBe(400);
      }
      expect((await call('admin', 'PATCH', `/v1/admin/policies/${p.id}`, {})).statusCode).toBe(400);
      expect(
        (await call('admin', 'PATCH', `/v1/admin/policies/${p.id}`, { kind: 'trial', durationDays: 900 })).statusCode,
      ).toBe(400);
      expect((await call('admin', 'GET', '/v1/admin/policies/pol_doesnotexist000000000')).statusCode).toBe(404);
      expect((await call('admin', 'GET', '/v1/admin/policies/lic_notapolicy0000000000')).statusCode).toBe(400);
      expect((await policyAudit(p.id)).map((a) => a.action)).toEqual(['policy.created']);
    });
  });
});
