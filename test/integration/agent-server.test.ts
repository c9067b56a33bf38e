import type { InjectOptions } from 'fastify';
import { ensureSchedules, SCHEDULES } from '../../worker/schedules';
import {
  createFixedClock,
  loadPurposeKeySet,
  loadPurposeSigner,
  signedStatusSchema,
  verifySignature,
  type HeartbeatRequest,
} from '../../protocol';
import { CustomerIdAttribute, LicenseIdAttribute } from '../../workflows/license-contract';
import { buildTestApp, testConfig } from '../support/app';
import {
  type AgentFixture,
  asAgent,
  createAgent,
  createAgentWithLicense,
  createStaff,
  eventually,
  GOOD_HASH,
  heartbeatRequest,
  signManifest,
  type Staff,
  withJsonBody,
} from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestKeysDir } from '../support/license-helpers';
import { connectTestTemporal, type TestTemporal, testTemporalDeps, runTestWorker } from '../support/temporal';

const HEARTBEAT_S = 10;
describe('agents on the control plane: heartbeat, quarantine, offline sweep, deregistration', () => {
  let db: TestDatabase;
  let t: TestTemporal;
  let stopWorker: () => Promise<void>;
  let keys: ReturnType<typeof createTestKeysDir>;
  let keysDir: string;
  let built: Awaited<ReturnType<typeof buildTestApp>>;
  let staff: Staff;
  const clock = createFixedClock(new Date('2026-11-26T12:00:00.000Z'));

  const inject = (opts: InjectOptions) => built.app.inject(withJsonBody(opts));
  const heartbeat = (a: AgentFixture, over: Partial<HeartbeatRequest> = {}) =>
    inject(heartbeatRequest(a, GOOD_HASH, over));
  const agentRow = async (id: string) =>
    (await db.adminPool.query('SELECT * FROM agentina.agents WHERE id = $1', [id])).rows[0];
  const audits = async (subjectId: string) =>
    (
      await db.adminPool.query(
        'SELECT action, actor_kind, actor_id, data FROM agentina.audit_events WHERE subject_id = $1 ORDER BY seq',
        [subjectId],
      )
    ).rows as Array<{ action: string; actor_kind: string; actor_id: string; data: Record<string, unknown> }>;
  const feed = async (agentId: string) =>
    (
      await db.adminPool.query('SELECT state, version FROM agentina.status_feed WHERE agent_id = $1 ORDER BY id', [
        agentId,
      ])
    ).rows;

  beforeAll(async () => {
    db = await createTestDatabase('agentsrv');
    staff = createStaff(db.pool, clock);
    keys = createTestKeysDir();
    keysDir = keys.dir;
    t = await connectTestTemporal('agentsrv');
    stopWorker = await runTestWorker(t, { pool: db.pool, clock, keysDir });
    const temporal = testTemporalDeps(t.client, t.taskQueue);
    const config = testConfig({ AGENTINA_KEYS_DIR: keysDir, AGENT_HEARTBEAT_INTERVAL: `${HEARTBEAT_S}s` });
    built = await buildTestApp({ pool: db.pool, temporal, clock, config });
    const r = await inject({
      method: 'POST',
      url: '/v1/admin/releases',
      headers: await staff.admin(),
      payload: signManifest(loadPurposeSigner(keysDir, 'release'), '1.0.0'),
    });
    expect(r.statusCode).toBe(201);
  });

  afterAll(async () => {
    await built?.close();
    await stopWorker?.();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  describe('POST /v1/agent/heartbeat', () => {
    it('stores what the agent reports and answers with a status signed by the license key', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const res = await heartbeat(a, { inFlightTasks: 2 });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.heartbeatIntervalS).toBe(HEARTBEAT_S);
      const status = signedStatusSchema.parse(body.status);
      expect(verifySignature(status.payload, status.signature, loadPurposeKeySet(keysDir, 'license'))).toEqual({
        ok: true,
      });
      expect(status.payload).toMatchObject({
        agentId: a.agentId,
        licenseId: a.licenseId,
        agentStatus: 'active',
        good: true,
      });
      const row = await agentRow(a.agentId);
      expect(row).toMatchObject({
        agent_version: '1.0.0',
        runtime_hash: GOOD_HASH,
        fingerprint_score: 100,
        changed_components: [],
        in_flight_tasks: 2,
        status: 'active',
      });
      expect(row.last_heartbeat_at.toISOString()).toBe(clock.now().toISOString());
    });

    it("keeps the agent's own verdict next to the control plane's: terminal and why, cleared when it reports none", async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const view = async () =>
        (await inject({ method: 'GET', url: `/v1/admin/agents/${a.agentId}`, headers: await staff.admin() })).json<{
          status: string;
          reportedTerminalReason: string | null;
          reportedTerminalAt: string | null;
        }>();
      expect((await heartbeat(a)).statusCode).toBe(200);
      expect(await view()).toMatchObject({ status: 'active', reportedTerminalReason: null, reportedTerminalAt: null });
      const since = clock.now().toISOString();
      expect((await heartbeat(a, { terminalReason: 'LICENSE_REVOKED: license revoked' })).statusCode).toBe(200);
      clock.advance(60_000);
      // A repeated report keeps the time it was first made.
      expect((await heartbeat(a, { terminalReason: 'LICENSE_REVOKED: license revoked' })).statusCode).toBe(200);
      expect(await view()).toMatchObject({
        status: 'active',
        reportedTerminalReason: 'LICENSE_REVOKED: license revoked',
        reportedTerminalAt: since,
      });
      // The portal sees it too, for its own agent.
      const portal = await inject({
        method: 'GET',
        url: `/v1/portal/agents/${a.agentId}`,
        headers: await staff.customer(a.customerId),
      });
      expect(portal.json()).toMatchObject({ reportedTerminalReason: 'LICENSE_REVOKED: license revoked' });
      expect((await heartbeat(a)).statusCode).toBe(200);
      expect(await view()).toMatchObject({ reportedTerminalReason: null, reportedTerminalAt: null });
    });

    it("stores the status version the agent last accepted next to the control plane's; a malformed one is a 400 and changes nothing", async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const view = async () =>
        (await inject({ method: 'GET', url: `/v1/admin/agents/${a.agentId}`, headers: await staff.admin() })).json<{
          statusVersion: number;
          acknowledgedStatusVersion: number | null;
        }>();
      const first = await heartbeat(a);
      expect(first.statusCode).toBe(200);
      const version = signedStatusSchema.parse(first.json().status).payload.version;
      expect(await view()).toEqual(
        expect.objectContaining({ statusVersion: version, acknowledgedStatusVersion: null }),
      );
      expect((await heartbeat(a, { statusVersion: version })).statusCode).toBe(200);
      expect(await view()).toEqual(
        expect.objectContaining({ statusVersion: version, acknowledgedStatusVersion: version }),
      );
      for (const bad of [-1, 1.5, '7', 2 ** 53, null]) {
        const res = await heartbeat(a, { statusVersion: bad as number });
        expect(res.statusCode).toBe(400);
        expect(res.json().error.code).toBe('VALIDATION_FAILED');
      }
      expect((await view()).acknowledgedStatusVersion).toBe(version);
      // The portal shows it to the customer for its own agent.
      const portal = await inject({
        method: 'GET',
        url: `/v1/portal/agents/${a.agentId}`,
        headers: await staff.customer(a.customerId),
      });
      expect(portal.json()).toMatchObject({ acknowledgedStatusVersion: version });
    });

    it('stores the update check an agent reports (a frozen repository shows on its admin view); a bad report is a 400', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const at = clock.now().toISOString();
      expect((await heartbeat(a, { update: { outcome: 'refused', reason: 'frozen', at } })).statusCode).toBe(200);
      const view = async () =>
        (await inject({ method: 'GET', url: `/v1/admin/agents/${a.agentId}`, headers: await staff.admin() })).json();
      expect((await view()).update).toEqual({ outcome: 'refused', reason: 'frozen', at });
      // A heartbeat without a report keeps the last one; a malformed one changes nothing.
      expect((await heartbeat(a)).statusCode).toBe(200);
      const bad = await heartbeat(a, { update: { outcome: 'refused', reason: 'hacked' as 'frozen', at } });
      expect(bad.statusCode).toBe(400);
      expect((await view()).update).toEqual({ outcome: 'refused', reason: 'frozen', at });
    });

    it.each([
      ['no credential', {}],
      ['an unknown agent credential', { authorization: `Bearer agc_${'x'.repeat(43)}` }],
    ])('refuses %s with 401', async (_label, headers) => {
      const res = await inject({ method: 'POST', url: '/v1/agent/heartbeat', headers, payload: {} });
      expect(res.statusCode).toBe(401);
    });

    it('refuses admins and customers (403): only agents heartbeat', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      for (const headers of [await staff.admin(), await staff.customer(a.customerId)]) {
        const res = await inject({ method: 'POST', url: '/v1/agent/heartbeat', headers, payload: {} });
        expect(res.statusCode).toBe(403);
      }
    });

    it.each([
      ['a malformed runtime hash', { runtimeHash: 'abc' }],
      ['an unknown field', { extra: 1 }],
      ['a score above 100', { score: 101 }],
      ['an unknown component', { changedComponents: ['gpu'] }],
    ])('rejects %s with 400 in the one error shape', async (_label, over) => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const res = await heartbeat(a, over as Partial<HeartbeatRequest>);
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('VALIDATION_FAILED');
    });

    it('passes with one changed component (score 75 ≥ 70) and reports it', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const res = await heartbeat(a, {
        fingerprint: { ...a.fingerprint, disk: 'c'.repeat(64) },
        score: 75,
        changedComponents: ['disk'],
      });
      expect(res.statusCode).toBe(200);
      expect(await agentRow(a.agentId)).toMatchObject({
        status: 'active',
        fingerprint_score: 75,
        changed_components: ['disk'],
        reported_fingerprint: { ...a.fingerprint, disk: 'c'.repeat(64) },
      });
      // The activation record stays the reference: the next heartbeat is scored against it, not against the last one.
      expect((await agentRow(a.agentId)).fingerprint).toEqual(a.fingerprint);
    });

    it('scores the fingerprint itself: an agent claiming 100 with three changed components is still quarantined', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const moved = { ...a.fingerprint, baseboard: '1'.repeat(64), disk: '2'.repeat(64), cpu: '3'.repeat(64) };
      const res = await heartbeat(a, { fingerprint: moved, score: 100, changedComponents: [] });
      expect(res.statusCode).toBe(200);
      await eventually(async () => (await agentRow(a.agentId)).status === 'quarantined', 'fingerprint quarantine');
      const row = await agentRow(a.agentId);
      expect(row).toMatchObject({
        fingerprint_score: 25,
        changed_components: ['baseboard', 'disk', 'cpu'],
        status_reason: 'fingerprint_mismatch',
      });
      const actions = (await audits(a.agentId)).map((e) => e.action);
      expect(actions).toEqual(['agent.fingerprint_mismatch', 'agent.quarantined']);
    });
  });

  describe('runtime tamper detection → agentQuarantine → admin release', () => {
    it('quarantines on a tampered runtime hash: status version rises, the feed has the row, the agent sees it', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const before = await agentRow(a.agentId);
      const res = await heartbeat(a, { runtimeHash: 'f'.repeat(64) });
      expect(res.statusCode).toBe(200);
      // The answer to the tampered heartbeat itself already tells the agent to stop.
      expect(res.json().status.payload).toMatchObject({
        agentStatus: 'quarantined',
        good: false,
        reason: 'integrity_mismatch',
      });
      await eventually(async () => (await agentRow(a.agentId)).status === 'quarantined', 'integrity quarantine');
      const after = await agentRow(a.agentId);
      expect(Number(after.status_version)).toBe(Number(before.status_version) + 1);
      expect(after.status_reason).toBe('integrity_mismatch');
      expect(await feed(a.agentId)).toEqual([
        { state: 'quarantined', version: String(1 + Number(after.status_version)) },
      ]);
      const events = await audits(a.agentId);
      expect(events.map((e) => e.action)).toEqual(['agent.integrity_mismatch', 'agent.quarantined']);
      expect(events[0]!.data).toMatchObject({ reportedRuntimeHash: 'f'.repeat(64), expectedRuntimeHash: GOOD_HASH });
      expect(events[1]).toMatchObject({ actor_kind: 'workflow', actor_id: `agent/${a.agentId}` });
      const described = await t.client.workflow.getHandle(`agent/${a.agentId}`).describe();
      expect(described.typedSearchAttributes.get(LicenseIdAttribute)).toBe(a.licenseId);
      expect(described.typedSearchAttributes.get(CustomerIdAttribute)).toBe(a.customerId);

      // The next answer the agent gets says it may not work.
      const next = await heartbeat(a, { runtimeHash: 'f'.repeat(64) });
      expect(next.json().status.payload).toMatchObject({ agentStatus: 'quarantined', good: false });
      // Repeated tampered heartbeats neither start a twin workflow nor audit again.
      expect((await audits(a.agentId)).length).toBe(2);

      const status = await inject({ method: 'GET', url: '/v1/agent/status', headers: asAgent(a) });
      expect(status.json().status.payload).toMatchObject({
        agentStatus: 'quarantined',
        good: false,
        version: 1 + Number(after.status_version),
      });

      // Only an admin releases it; customers and the agent itself cannot.
      expect(
        (
          await inject({
            method: 'POST',
            url: `/v1/admin/agents/${a.agentId}/release`,
            headers: await staff.customer(a.customerId),
          })
        ).statusCode,
      ).toBe(403);
      expect(
        (await inject({ method: 'POST', url: `/v1/admin/agents/${a.agentId}/release`, headers: asAgent(a) }))
          .statusCode,
      ).toBe(403);
      const rel = await inject({
        method: 'POST',
        url: `/v1/admin/agents/${a.agentId}/release`,
        headers: await staff.admin('releaser'),
      });
      expect(rel.statusCode).toBe(200);
      expect(rel.json()).toMatchObject({ id: a.agentId, status: 'active' });
      const released = await agentRow(a.agentId);
      expect(Number(released.status_version)).toBe(Number(after.status_version) + 1);
      const last = (await audits(a.agentId)).at(-1)!;
      expect(last).toMatchObject({
        action: 'agent.released',
        actor_kind: 'admin',
        actor_id: staff.adminId('releaser'),
      });
      const result = await t.client.workflow.getHandle(`agent/${a.agentId}`).result();
      expect(result).toEqual({ agentId: a.agentId, outcome: 'released' });

      // Releasing an agent that is not quarantined is a conflict; an unknown agent is a 404.
      expect(
        (await inject({ method: 'POST', url: `/v1/admin/agents/${a.agentId}/release`, headers: await staff.admin() }))
          .statusCode,
      ).toBe(409);
      expect(
        (
          await inject({
            method: 'POST',
            url: '/v1/admin/agents/agt_doesnotexist000000000/release',
            headers: await staff.admin(),
          })
        ).statusCode,
      ).toBe(404);

      // Tampering again after a release starts a new quarantine.
      await heartbeat(a, { runtimeHash: 'e'.repeat(64) });
      await eventually(async () => (await agentRow(a.agentId)).status === 'quarantined', 'second quarantine');
    });

    it('quarantines an agent that reports a version with no signed manifest', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      await heartbeat(a, { agentVersion: '9.9.9' });
      await eventually(async () => (await agentRow(a.agentId)).status === 'quarantined', 'unknown-version quarantine');
      const events = await audits(a.agentId);
      expect(events[0]).toMatchObject({
        action: 'agent.integrity_mismatch',
        data: expect.objectContaining({ expectedRuntimeHash: null }),
      });
    });

    it('an agent that deregisters while quarantined ends its quarantine workflow', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      await heartbeat(a, { runtimeHash: 'd'.repeat(64) });
      await eventually(async () => (await agentRow(a.agentId)).status === 'quarantined', 'quarantine');
      expect((await inject({ method: 'POST', url: '/v1/agent/deregister', headers: asAgent(a) })).statusCode).toBe(200);
      expect(await t.client.workflow.getHandle(`agent/${a.agentId}`).result()).toEqual({
        agentId: a.agentId,
        outcome: 'deregistered',
      });
    });
  });

  describe('admin and portal agent views', () => {
    it("a customer sees its own agents only; another customer's agent is a 404", async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const b = await createAgentWithLicense(db.pool, clock.now());
      const mine = await inject({
        method: 'GET',
        url: '/v1/portal/agents',
        headers: await staff.customer(a.customerId),
      });
      expect(mine.statusCode).toBe(200);
      expect(mine.json().items.map((i: { id: string }) => i.id)).toEqual([a.agentId]);
      expect(
        (
          await inject({
            method: 'GET',
            url: `/v1/portal/agents/${a.agentId}`,
            headers: await staff.customer(a.customerId),
          })
        ).statusCode,
      ).toBe(200);
      const theirs = await inject({
        method: 'GET',
        url: `/v1/portal/agents/${b.agentId}`,
        headers: await staff.customer(a.customerId),
      });
      expect(theirs.statusCode).toBe(404);
      expect(theirs.json().error.code).toBe('NOT_FOUND');
      // Customers cannot widen the scope with an admin filter.
      expect(
        (
          await inject({
            method: 'GET',
            url: `/v1/portal/agents?customerId=${b.customerId}`,
            headers: await staff.customer(a.customerId),
          })
        ).statusCode,
      ).toBe(400);
      expect(
        (await inject({ method: 'GET', url: '/v1/admin/agents', headers: await staff.customer(a.customerId) }))
          .statusCode,
      ).toBe(403);
    });

    it('admins list and read any agent, without secrets', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const list = await inject({
        method: 'GET',
        url: `/v1/admin/agents?customerId=${a.customerId}`,
        headers: await staff.admin(),
      });
      expect(list.json().items).toHaveLength(1);
      const one = await inject({ method: 'GET', url: `/v1/admin/agents/${a.agentId}`, headers: await staff.admin() });
      expect(one.json()).toMatchObject({ id: a.agentId, status: 'active', licenseState: 'active' });
      expect(one.body).not.toMatch(/credential|public_key|publicKey|fingerprint_salt/);
      expect(one.body).not.toContain(a.fingerprint.baseboard);
      const paged = await inject({ method: 'GET', url: '/v1/admin/agents?limit=1', headers: await staff.admin() });
      expect(paged.json().items).toHaveLength(1);
      expect(paged.json().nextCursor).toEqual(expect.stringMatching(/^agt_/));
    });
  });

  describe('POST /v1/agent/deregister', () => {
    it('frees the seat, cancels open tasks, audits, and the credential stops working', async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const sibling = await createAgent(db.pool, a.licenseId, a.customerId, clock.now());
      const seats = async () =>
        Number(
          (
            await db.adminPool.query(
              `SELECT count(*) FROM agentina.agents WHERE license_id = $1 AND status <> 'deregistered'`,
              [a.licenseId],
            )
          ).rows[0].count,
        );
      expect(await seats()).toBe(2);
      const task = await inject({
        method: 'POST',
        url: '/v1/admin/tasks',
        headers: await staff.admin(),
        payload: { agentId: a.agentId, kind: 'echo', payload: { text: 'hi' } },
      });
      expect(task.statusCode).toBe(201);

      const res = await inject({ method: 'POST', url: '/v1/agent/deregister', headers: asAgent(a) });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ agentId: a.agentId, status: 'deregistered' });
      expect(await seats()).toBe(1);
      expect(await agentRow(a.agentId)).toMatchObject({ status: 'deregistered' });
      expect((await audits(a.agentId)).at(-1)).toMatchObject({
        action: 'agent.deregistered',
        actor_kind: 'agent',
        data: expect.objectContaining({ cancelledTasks: 1 }),
      });
      const cancelled = await inject({
        method: 'GET',
        url: `/v1/admin/tasks/${task.json().id}`,
        headers: await staff.admin(),
      });
      expect(cancelled.json().state).toBe('cancelled');
      expect((await feed(a.agentId)).at(-1)).toMatchObject({ state: 'deregistered' });

      for (const req of [
        { method: 'POST' as const, url: '/v1/agent/heartbeat', payload: {} },
        { method: 'POST' as const, url: '/v1/agent/deregister' },
        { method: 'GET' as const, url: '/v1/agent/tasks/next' },
      ]) {
        expect((await inject({ ...req, headers: asAgent(a) })).statusCode).toBe(401);
      }
      // The sibling on the same license is untouched.
      expect((await heartbeat(sibling)).statusCode).toBe(200);
      // No new task can be queued for a deregistered agent.
      const late = await inject({
        method: 'POST',
        url: '/v1/admin/tasks',
        headers: await staff.admin(),
        payload: { agentId: a.agentId, kind: 'echo', payload: {} },
      });
      expect(late.statusCode).toBe(409);
    });
  });

  describe('POST /v1/{admin,portal}/agents/:id/deregister', () => {
    it("an admin frees the seat of a lost machine; the agent's credential stops working", async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const res = await inject({
        method: 'POST',
        url: `/v1/admin/agents/${a.agentId}/deregister`,
        headers: await staff.admin('seatfreer'),
      });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        id: a.agentId,
        status: 'deregistered',
        deregisteredAt: clock.now().toISOString(),
      });
      expect((await audits(a.agentId)).at(-1)).toMatchObject({
        action: 'agent.deregistered',
        actor_kind: 'admin',
        actor_id: staff.adminId('seatfreer'),
      });
      expect((await heartbeat(a)).statusCode).toBe(401);
      expect(
        (
          await inject({
            method: 'POST',
            url: `/v1/admin/agents/${a.agentId}/deregister`,
            headers: await staff.admin(),
          })
        ).statusCode,
      ).toBe(409);
    });

    it("a customer deregisters its own agent; another customer's is a 404 and stays untouched", async () => {
      const a = await createAgentWithLicense(db.pool, clock.now());
      const b = await createAgentWithLicense(db.pool, clock.now());
      const refused = await inject({
        method: 'POST',
        url: `/v1/portal/agents/${b.agentId}/deregister`,
        headers: await staff.customer(a.customerId),
      });
      expect(refused.statusCode).toBe(404);
      expect((await agentRow(b.agentId)).status).toBe('active');
      const mine = await inject({
        method: 'POST',
        url: `/v1/portal/agents/${a.agentId}/deregister`,
        headers: await staff.customer(a.customerId),
      });
      expect(mine.statusCode).toBe(200);
      expect((await audits(a.agentId)).at(-1)).toMatchObject({ action: 'agent.deregistered', actor_kind: 'customer' });
      expect(
        (await inject({ method: 'POST', url: `/v1/admin/agents/${a.agentId}/deregister`, headers: asAgent(b) }))
          .statusCode,
      ).toBe(403);
    });
  });

  // Last: it moves the shared clock and sweeps every agent in this database.
  describe('offline sweep', () => {
    it('is registered as a Temporal Schedule every heartbeat interval, sweeping after three', () => {
      const config = testConfig({ AGENT_HEARTBEAT_INTERVAL: '60s' });
      const entry = SCHEDULES.map((make) => make(config)).find((e) => e.workflowType === 'agentOfflineSweep');
      expect(entry).toMatchObject({ everyMs: 60_000, args: [{ staleAfterS: 180 }] });
    });

    it('the schedule entry is accepted by Temporal and starts agentOfflineSweep on the configured queue', async () => {
      const config = testConfig({ AGENT_HEARTBEAT_INTERVAL: '60s', TEMPORAL_TASK_QUEUE: t.taskQueue });
      const entry = SCHEDULES.map((make) => make(config)).find((e) => e.workflowType === 'agentOfflineSweep')!;
      const id = `${entry.id}-test-${Date.now()}`;
      await ensureSchedules(t.client, config, [{ ...entry, id }]);
      const handle = t.client.schedule.getHandle(id);
      try {
        const d = await handle.describe();
        expect(d.action).toMatchObject({
          type: 'startWorkflow',
          workflowType: 'agentOfflineSweep',
          taskQueue: t.taskQueue,
          args: [{ staleAfterS: 180 }],
        });
      } finally {
        await handle.delete();
      }
    });

    it('marks agents silent for three intervals offline (audited), and a heartbeat brings them back', async () => {
      const silent = await createAgentWithLicense(db.pool, clock.now());
      const alive = await createAgentWithLicense(db.pool, clock.now());
      expect((await heartbeat(silent)).statusCode).toBe(200);
      clock.advance(3 * HEARTBEAT_S * 1000 + 1000);
      expect((await heartbeat(alive)).statusCode).toBe(200);

      const run = await t.client.workflow.execute('agentOfflineSweep', {
        taskQueue: t.taskQueue,
        workflowId: `sweep-${Date.now()}`,
        args: [{ staleAfterS: 3 * HEARTBEAT_S }],
      });
      expect(run.marked).toBeGreaterThanOrEqual(1);
      expect(await agentRow(silent.agentId)).toMatchObject({ status: 'offline', status_reason: 'no heartbeat' });
      expect(await agentRow(alive.agentId)).toMatchObject({ status: 'active' });
      expect((await audits(silent.agentId)).at(-1)).toMatchObject({ action: 'agent.offline', actor_kind: 'system' });
      expect((await feed(silent.agentId)).at(-1)).toMatchObject({ state: 'offline' });

      // Offline still counts as good (the agent may be briefly cut off), and its return is audited.
      const back = await heartbeat(silent);
      expect(back.json().status.payload).toMatchObject({ agentStatus: 'active', good: true });
      expect((await agentRow(silent.agentId)).status).toBe('active');
      expect((await audits(silent.agentId)).at(-1)).toMatchObject({ action: 'agent.online', actor_kind: 'agent' });

      // A second sweep right away changes nothing.
      const again = await t.client.workflow.execute('agentOfflineSweep', {
        taskQueue: t.taskQueue,
        workflowId: `sweep-${Date.now()}-2`,
        args: [{ staleAfterS: 3 * HEARTBEAT_S }],
      });
      expect((await agentRow(silent.agentId)).status).toBe('active');
      expect(again.marked).toBe(0);
    });
  });
});
