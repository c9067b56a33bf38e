import type { InjectOptions } from 'fastify';
import { statusResponseSchema, systemClock, verifySignature, type KeySet, type StatusPayload } from '../../protocol';
import { buildTestApp, testConfig } from '../support/app';
import { activateBody, createTestKeys } from '../support/activation-fixtures';
import { asAgent, createCustomer, createStaff, type Staff, withJsonBody } from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { eventually, licenseAudit } from '../support/license-helpers';
import { connectTestTemporal, runTestWorker, testTemporalDeps, type TestTemporal } from '../support/temporal';

/**
 * Time is enforced by the control plane itself: `licenses.state` is moved only by the lifecycle
 * workflow's worker, so with that worker stopped (here: never started) an expired license must
 * still be refused everywhere, from its dates. The attacker is a customer whose license ran out
 * while the operator's worker is down (or was stopped on purpose).
 */
describe('a stopped worker never extends a license', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeys>;
  let keySet: KeySet;
  let t: TestTemporal;
  let built: Awaited<ReturnType<typeof buildTestApp>>;
  let staff: Staff;
  let stopWorker: (() => Promise<void>) | undefined;
  const inject = (opts: InjectOptions) => built.app.inject(withJsonBody(opts));

  beforeAll(async () => {
    db = await createTestDatabase('timeauth');
    keys = createTestKeys();
    keySet = keys.keySet;
    t = await connectTestTemporal('timeauth');
    const config = testConfig({ AGENTINA_KEYS_DIR: keys.dir });
    built = await buildTestApp({ pool: db.pool, temporal: testTemporalDeps(t.client, t.taskQueue), config });
    staff = createStaff(db.pool, systemClock);
  });
  afterAll(async () => {
    await stopWorker?.();
    await built?.close();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  const admin = () => staff.admin();
  const status = async (credential: string, query = ''): Promise<{ payload: StatusPayload; changed: boolean }> => {
    const res = await inject({ method: 'GET', url: `/v1/agent/status${query}`, headers: asAgent({ credential }) });
    expect(res.statusCode).toBe(200);
    const parsed = statusResponseSchema.parse(res.json());
    expect(verifySignature(parsed.status.payload, parsed.status.signature, keySet)).toEqual({ ok: true });
    return { payload: parsed.status.payload, changed: parsed.changed };
  };
  const issueToken = async (licenseId: string) =>
    inject({
      method: 'POST',
      url: '/v1/admin/activation-tokens',
      headers: { ...(await admin()), 'content-type': 'application/json' },
      payload: { licenseId },
    });
  const queueTask = async (agentId: string) =>
    (
      await inject({
        method: 'POST',
        url: '/v1/admin/tasks',
        headers: { ...(await admin()), 'content-type': 'application/json' },
        payload: { agentId, kind: 'echo', payload: { text: 'hello' } },
      })
    ).json().id as string;
  const taskState = async (id: string) =>
    (await db.adminPool.query('SELECT state FROM agentina.tasks WHERE id = $1', [id])).rows[0].state as string;
  const licenseRow = async (id: string) =>
    (await db.adminPool.query('SELECT state, version FROM agentina.licenses WHERE id = $1', [id])).rows[0] as {
      state: string;
      version: string;
    };

  it('past its expiry (no grace) an active row gets no activation, no task, no result and a not-good status; the worker then catches up once', async () => {
    const TERM_MS = 8000;
    const customerId = await createCustomer(db.pool);
    const expiresAt = new Date(Date.now() + TERM_MS);
    const created = await inject({
      method: 'POST',
      url: '/v1/admin/licenses',
      headers: { ...(await admin()), 'content-type': 'application/json' },
      payload: {
        customerId,
        plan: 'standard',
        maxAgents: 5,
        term: { expiresAt: expiresAt.toISOString() },
        graceDays: 0,
      },
    });
    expect(created.statusCode).toBe(201);
    const licenseId = created.json().license.id as string;

    // While the term runs: one agent activated, one task leased (its result is still owed), one queued.
    const first = await issueToken(licenseId);
    expect(first.statusCode).toBe(201);
    const activated = await inject({
      method: 'POST',
      url: '/v1/agent/activate',
      payload: activateBody(first.json().token),
    });
    expect(activated.statusCode).toBe(200);
    const agent = activated.json<{ agentId: string; credential: string }>();
    const spare = (await issueToken(licenseId)).json().token as string;
    const leasedId = await queueTask(agent.agentId);
    const leased = await inject({ method: 'GET', url: '/v1/agent/tasks/next?wait=0', headers: asAgent(agent) });
    expect(leased.json().task?.id).toBe(leasedId);
    const queuedId = await queueTask(agent.agentId);
    const before = await status(agent.credential);
    expect(before.payload).toMatchObject({ good: true, licenseState: 'active' });
    // Set up in time: everything below happens after the term, with no worker to move the row.
    expect(Date.now()).toBeLessThan(expiresAt.getTime() - 500);

    // An agent parked on its current version is answered when the dates end the license.
    const parked = status(agent.credential, `?since=${before.payload.version}&wait=25`);
    const answered = await parked;
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt.getTime());
    expect(Date.now()).toBeLessThan(expiresAt.getTime() + 3000);
    expect(answered.changed).toBe(true);
    expect(answered.payload).toMatchObject({
      good: false,
      licenseState: 'expired',
      reason: 'license expired',
      version: before.payload.version,
    });

    // The row still says active: only the (stopped) worker moves it.
    expect(await licenseRow(licenseId)).toMatchObject({ state: 'active', version: '1' });

    const again = await inject({ method: 'POST', url: '/v1/agent/activate', payload: activateBody(spare) });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.message).toMatch(/license is expired/);
    // Refused inside the spending transaction: the token is not used up.
    expect(
      (
        await db.adminPool.query(
          'SELECT spent_at FROM agentina.activation_tokens WHERE license_id = $1 AND spent_at IS NULL',
          [licenseId],
        )
      ).rowCount,
    ).toBe(1);
    expect((await issueToken(licenseId)).statusCode).toBe(409);

    const next = await inject({ method: 'GET', url: '/v1/agent/tasks/next?wait=0', headers: asAgent(agent) });
    expect(next.statusCode).toBe(200);
    expect(next.json().task).toBeNull();
    expect(await taskState(queuedId)).toBe('queued');

    const result = await inject({
      method: 'POST',
      url: `/v1/agent/tasks/${leasedId}/result`,
      headers: { ...asAgent(agent), 'content-type': 'application/json' },
      payload: { outcome: 'succeeded', result: { echoed: 'hello' } },
    });
    expect(result.statusCode).toBe(409);
    expect(result.json().error.message).toMatch(/license is expired/);
    expect(await taskState(leasedId)).toBe('leased');

    const after = await status(agent.credential);
    expect(after.payload).toMatchObject({ good: false, licenseState: 'expired', reason: 'license expired' });
    expect((await licenseAudit(db.pool, licenseId)).map((a) => a.action)).toEqual(['license.created']);

    // The worker returns: the lifecycle catches up with one transition, and the answer follows it.
    stopWorker = await runTestWorker(t, { pool: db.pool, keysDir: keys.dir });
    await eventually(
      () => licenseRow(licenseId),
      (r) => r.state === 'expired',
      20000,
      'row expired',
    );
    expect(await licenseRow(licenseId)).toEqual({ state: 'expired', version: '2' });
    const actions = (await licenseAudit(db.pool, licenseId)).map((a) => a.action);
    expect(actions).toEqual(['license.created', 'license.expired']);
    const caughtUp = await status(agent.credential);
    expect(caughtUp.payload).toMatchObject({
      good: false,
      licenseState: 'expired',
      version: before.payload.version + 1,
    });
  }, 60_000);

  it('within grace an overdue row is still good (as the grace rule says) and says so; past grace it is not', async () => {
    const customerId = await createCustomer(db.pool);
    const created = await inject({
      method: 'POST',
      url: '/v1/admin/licenses',
      headers: { ...(await admin()), 'content-type': 'application/json' },
      payload: { customerId, plan: 'standard', maxAgents: 5, term: { days: 30 }, graceDays: 3 },
    });
    const licenseId = created.json().license.id as string;
    const activate = async () =>
      (
        await inject({
          method: 'POST',
          url: '/v1/agent/activate',
          payload: activateBody((await issueToken(licenseId)).json().token),
        })
      ).json<{ agentId: string; credential: string }>();
    const agent = await activate();
    // Status rows are reused until a NOTIFY, and a hand-made date change sends none: the second
    // look is through an agent whose row this process has not read yet.
    const other = await activate();
    const queuedId = await queueTask(agent.agentId);

    // The application role cannot move a license's dates; the test database's owner can.
    const moveDates = (expiresAt: Date) =>
      db.adminPool.query('UPDATE agentina.licenses SET expires_at = $2, not_before = $3 WHERE id = $1', [
        licenseId,
        expiresAt,
        new Date(expiresAt.getTime() - 60 * 86400_000),
      ]);
    await moveDates(new Date(Date.now() - 86400_000)); // a day into a 3-day grace
    const inGrace = await status(agent.credential);
    expect(inGrace.payload).toMatchObject({ good: true, licenseState: 'grace', graceDays: 3 });
    const leased = await inject({ method: 'GET', url: '/v1/agent/tasks/next?wait=0', headers: asAgent(agent) });
    expect(leased.json().task?.id).toBe(queuedId);
    expect((await issueToken(licenseId)).statusCode).toBe(201);

    await moveDates(new Date(Date.now() - 4 * 86400_000)); // past the grace
    expect((await status(other.credential)).payload).toMatchObject({
      good: false,
      licenseState: 'expired',
      reason: 'license expired',
    });
    const result = await inject({
      method: 'POST',
      url: `/v1/agent/tasks/${queuedId}/result`,
      headers: { ...asAgent(agent), 'content-type': 'application/json' },
      payload: { outcome: 'succeeded' },
    });
    expect(result.statusCode).toBe(409);
    expect((await issueToken(licenseId)).statusCode).toBe(409);
    expect((await licenseRow(licenseId)).state).toBe('active');
  });
});
