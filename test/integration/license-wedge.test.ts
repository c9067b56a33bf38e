import type { FastifyRequest } from 'fastify';
import { ActivityFailure } from '@temporalio/common';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { Principal } from '../../api/auth/access';
import { getLicense } from '../../db/licenses-repo';
import { systemClock, type Actor } from '../../protocol';
import type { LicenseService } from '../../services/licenses/license-service';
import { licenseStateQuery, licenseWorkflowId, suspendUpdate, UPDATE_REFUSED } from '../../workflows/license-contract';
import { buildTestApp, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import {
  createTestCustomer,
  createTestKeysDir,
  eventually,
  licenseAudit,
  testLicenseService,
} from '../support/license-helpers';
import { connectTestTemporal, runTestWorker, type TestTemporal } from '../support/temporal';

/**
 * A transition PostgreSQL refuses for a reason no retry can fix (a NUL in the reason, a constraint)
 * fails that one change with a 4xx at once; the lifecycle stays free for the next change and its
 * timers. Before, the write was retried forever: every later change, revoke included, answered
 * 503 and the expiry timer waited behind it.
 */
describe('a license lifecycle cannot be wedged', () => {
  const admin: Actor = { kind: 'admin', id: 'adm_wedgetester0000000001' };
  const REFUSED_REASON = 'refused by a test trigger';
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let stopWorker: () => Promise<void>;
  let harness: Awaited<ReturnType<typeof buildTestApp>>;
  let service: LicenseService;
  let customerId: string;

  beforeAll(async () => {
    db = await createTestDatabase('licwedge');
    t = await connectTestTemporal('licwedge');
    keys = createTestKeysDir();
    customerId = await createTestCustomer(db.pool);
    stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
    const config = testConfig({
      TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
      TEMPORAL_TASK_QUEUE: t.taskQueue,
      AGENTINA_KEYS_DIR: keys.dir,
    });
    const principal: Principal = { kind: 'admin', id: admin.id, sessionId: 'ses_wedge' };
    const authenticate = async (req: FastifyRequest) => (req.headers['x-test-as'] === 'admin' ? principal : null);
    harness = await buildTestApp({ pool: db.pool, config, authenticate });
    // The lifecycles this file starts itself retry a refused timer transition after 1.5 s, not an hour.
    service = testLicenseService({
      pool: db.pool,
      temporal: { client: t.client, taskQueue: t.taskQueue },
      keysDir: keys.dir,
      refusedTimerRetryMs: 1500,
      updateTimeoutMs: 20000,
    });
    // A constraint of the test's own (as the owner role): it refuses one reason, and the grace
    // transition of licenses listed in wedge_refuse_grace.
    await db.adminPool.query(`
      CREATE TABLE agentina.wedge_refuse_grace (license_id text PRIMARY KEY);
      GRANT SELECT ON agentina.wedge_refuse_grace TO PUBLIC;
      CREATE FUNCTION agentina.wedge_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.state_reason = '${REFUSED_REASON}' THEN
          RAISE EXCEPTION 'refused reason' USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.state = 'grace' AND EXISTS (SELECT 1 FROM agentina.wedge_refuse_grace WHERE license_id = NEW.id) THEN
          RAISE EXCEPTION 'refused grace' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER wedge_refuse BEFORE UPDATE ON agentina.licenses FOR EACH ROW EXECUTE FUNCTION agentina.wedge_refuse();
    `);
  });

  afterAll(async () => {
    await harness?.close();
    await stopWorker?.();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  const api = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    harness.app.inject({
      method,
      url,
      headers: { 'x-test-as': 'admin' },
      ...(payload !== undefined ? { payload: payload as object } : {}),
    });

  async function newLicense(expiresInMs: number, graceDays = 1): Promise<string> {
    const { license } = await service.createLicense(admin, {
      customerId,
      plan: 'pro',
      features: {},
      maxAgents: 1,
      graceDays,
      trialEndState: 'expired',
      term: { expiresAt: new Date(Date.now() + expiresInMs).toISOString() },
    });
    return license.id;
  }
  const row = async (id: string) => (await getLicense(db.pool, id))!;
  const actions = async (id: string) => (await licenseAudit(db.pool, id)).map((a) => a.action);
  const workflowStatus = async (id: string) =>
    (await t.client.workflow.getHandle(licenseWorkflowId(id)).describe()).status.name;

  it('the API refuses a NUL reason with 400 before the lifecycle sees it; revoke lands at once', async () => {
    const id = await newLicense(86_400_000);
    const res = await api('POST', `/v1/admin/licenses/${id}/suspend`, { reason: 'x\u0000y' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED', details: [{ path: 'body.reason' }] } });
    const started = Date.now();
    const revoked = await api('POST', `/v1/admin/licenses/${id}/revoke`, { reason: 'after the NUL' });
    expect([revoked.statusCode, revoked.json().license?.state]).toEqual([200, 'revoked']);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a NUL that reaches the workflow directly fails that update at once and for good; the expiry timer still fires and revoke lands', async () => {
    const id = await newLicense(4000);
    const handle = t.client.workflow.getHandle(licenseWorkflowId(id));
    // An operator with Temporal access sends the update past the API: refused as unsigned, at once,
    // and the refusal's audit row stores the claimed reason scrubbed (a NUL there must not wedge it).
    const started = Date.now();
    const unsigned = await handle.executeUpdate(suspendUpdate, { args: [{ reason: 'x\u0000y', actor: admin }] }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(unsigned).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (unsigned as WorkflowUpdateFailedError).cause;
    const refusal = cause instanceof ActivityFailure ? cause.cause : cause;
    expect(refusal).toMatchObject({ type: UPDATE_REFUSED, nonRetryable: true });
    expect(Date.now() - started).toBeLessThan(5000);
    // Through the service a NUL cannot get this far at all: reasons are scrubbed to storable text
    // before they reach the workflow (protocol/redact.ts scrubFreeText), so class-22 refusals are
    // left to the constraint test below (class 23) and to the activity's own mapping.
    expect(await row(id)).toMatchObject({ state: 'active', version: 1 });
    expect(await actions(id)).toEqual(['license.created', 'license.update_refused']);

    // The expiry timer was not held up: active → grace on time.
    await eventually(
      () => row(id),
      (r) => r.state === 'grace',
      20000,
      'expiry to grace',
    );
    expect(await handle.query(licenseStateQuery)).toMatchObject({ state: 'grace', version: 2 });
    const revoked = await api('POST', `/v1/admin/licenses/${id}/revoke`, { reason: 'after the NUL' });
    expect([revoked.statusCode, revoked.json().license]).toEqual([200, expect.objectContaining({ state: 'revoked' })]);
    expect(await actions(id)).toEqual([
      'license.created',
      'license.update_refused',
      'license.grace_started',
      'license.revoked',
    ]);
    expect(await workflowStatus(id)).toBe('RUNNING');
  });

  it('a write a constraint refuses answers 409 in the one error shape, at once; the next change lands', async () => {
    const id = await newLicense(86_400_000);
    const started = Date.now();
    const res = await api('POST', `/v1/admin/licenses/${id}/suspend`, { reason: REFUSED_REASON });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({
      error: { code: 'CONFLICT', message: expect.stringMatching(/refused/), requestId: expect.any(String) },
    });
    expect(res.json().error.message).not.toMatch(/check_violation|refused reason|SQLSTATE/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await row(id)).toMatchObject({ state: 'active', version: 1 });

    const suspended = await api('POST', `/v1/admin/licenses/${id}/suspend`, { reason: 'a reason the rule allows' });
    expect([suspended.statusCode, suspended.json().license?.state]).toEqual([200, 'suspended']);
    const revoked = await api('POST', `/v1/admin/licenses/${id}/revoke`, { reason: REFUSED_REASON + ' too' });
    expect([revoked.statusCode, revoked.json().license?.state]).toEqual([200, 'revoked']);
    expect(await actions(id)).toEqual(['license.created', 'license.suspended', 'license.revoked']);
  });

  it('a timer transition the database refuses is tried again later, and updates are served meanwhile', async () => {
    const id = await newLicense(3000);
    await db.adminPool.query('INSERT INTO agentina.wedge_refuse_grace (license_id) VALUES ($1)', [id]);
    const handle = t.client.workflow.getHandle(licenseWorkflowId(id));
    // Past the deadline: the grace transition was refused, the workflow is still running and active.
    await new Promise((r) => setTimeout(r, 4500));
    expect(await row(id)).toMatchObject({ state: 'active', version: 1 });
    expect(await workflowStatus(id)).toBe('RUNNING');
    // Updates are served while the refusal stands: a renew lands (its expiry, 2 s on, is refused again).
    const renewed = await service.renewLicense(id, admin, new Date(Date.now() + 2000).toISOString());
    expect(renewed.license).toMatchObject({ state: 'active', version: 2 });
    await new Promise((r) => setTimeout(r, 3000));
    expect(await row(id)).toMatchObject({ state: 'active', version: 2 });
    expect(await handle.query(licenseStateQuery)).toMatchObject({ state: 'active', version: 2 });
    expect(await workflowStatus(id)).toBe('RUNNING');

    // The rule is lifted: the next try (1.5 s later) moves the license on.
    await db.adminPool.query('DELETE FROM agentina.wedge_refuse_grace WHERE license_id = $1', [id]);
    await eventually(
      () => row(id),
      (r) => r.state === 'grace',
      15000,
      'grace after the refusal lifted',
    );
    expect((await service.revokeLicense(id, admin, 'after the refused timer')).license.state).toBe('revoked');
    expect(await actions(id)).toEqual([
      'license.created',
      'license.renewed',
      'license.grace_started',
      'license.revoked',
    ]);
  });
});
