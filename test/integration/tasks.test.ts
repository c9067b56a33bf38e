import type { InjectOptions } from 'fastify';
import { createFixedClock } from '../../protocol';
import { buildTestApp, testConfig } from '../support/app';
import {
  type AgentFixture,
  asAgent,
  createAgent,
  createAgentWithLicense,
  createStaff,
  type Staff,
  withJsonBody,
} from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestKeysDir } from '../support/license-helpers';
import { connectTestTemporal, type TestTemporal, testTemporalDeps } from '../support/temporal';

const LEASE_S = 60;

describe('tasks: queueing, leasing, results', () => {
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let keysDir: string;
  let built: Awaited<ReturnType<typeof buildTestApp>>;
  let staff: Staff;
  const clock = createFixedClock(new Date('2026-11-26T12:00:00.000Z'));
  const inject = (opts: InjectOptions) => built.app.inject(withJsonBody(opts));

  const queue = async (
    a: Pick<AgentFixture, 'agentId'>,
    who: { customer?: string } = {},
    body: Record<string, unknown> = {},
  ) =>
    inject({
      method: 'POST',
      url: who.customer ? '/v1/portal/tasks' : '/v1/admin/tasks',
      headers: who.customer ? await staff.customer(who.customer) : await staff.admin(),
      payload: { agentId: a.agentId, kind: 'echo', payload: { text: 'hello' }, ...body },
    });
  const next = (a: AgentFixture, wait = 0) =>
    inject({ method: 'GET', url: `/v1/agent/tasks/next?wait=${wait}`, headers: asAgent(a) });
  const report = (
    a: AgentFixture,
    taskId: string,
    body: Record<string, unknown> = { outcome: 'succeeded', result: { echoed: 'hello' } },
  ) => inject({ method: 'POST', url: `/v1/agent/tasks/${taskId}/result`, headers: asAgent(a), payload: body });
  const audits = async (subjectId: string) =>
    (
      await db.adminPool.query(
        'SELECT action, actor_kind, data FROM agentina.audit_events WHERE subject_id = $1 ORDER BY seq',
        [subjectId],
      )
    ).rows;

  beforeAll(async () => {
    db = await createTestDatabase('tasks');
    staff = createStaff(db.pool, clock);
    keys = createTestKeysDir();
    keysDir = keys.dir;
    t = await connectTestTemporal('tasks');
    const temporal = testTemporalDeps(t.client, t.taskQueue);
    const config = testConfig({ AGENTINA_KEYS_DIR: keysDir, AGENT_TASK_LEASE: `${LEASE_S}s` });
    built = await buildTestApp({ pool: db.pool, temporal, clock, config });
  });

  afterAll(async () => {
    await built?.close();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  it('an admin queues a task; the agent leases it with an expiry; the result is recorded and audited', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const created = await queue(a);
    expect(created.statusCode).toBe(201);
    const task = created.json();
    expect(task).toMatchObject({
      agentId: a.agentId,
      kind: 'echo',
      state: 'queued',
      payload: { text: 'hello' },
      createdBy: { kind: 'admin' },
    });

    const leased = await next(a);
    expect(leased.statusCode).toBe(200);
    expect(leased.json().task).toEqual({
      id: task.id,
      kind: 'echo',
      payload: { text: 'hello' },
      leaseExpiresAt: new Date(clock.now().getTime() + LEASE_S * 1000).toISOString(),
    });
    expect((await next(a)).json().task).toBeNull();

    const done = await report(a, task.id);
    expect(done.statusCode).toBe(200);
    expect(done.json()).toEqual({ id: task.id, state: 'succeeded' });
    // A retried report of the same outcome is answered again; a different one is a conflict.
    expect((await report(a, task.id)).statusCode).toBe(200);
    expect((await report(a, task.id, { outcome: 'failed' })).statusCode).toBe(409);

    const view = await inject({ method: 'GET', url: `/v1/admin/tasks/${task.id}`, headers: await staff.admin() });
    expect(view.json()).toMatchObject({
      state: 'succeeded',
      result: { echoed: 'hello' },
      attempts: 1,
      leaseExpiresAt: null,
    });
    expect((await audits(task.id)).map((e: { action: string }) => e.action)).toEqual([
      'task.created',
      'task.completed',
    ]);
  });

  it('stores http.get header values sealed, shows them to nobody but the leasing agent, and scrubs them from results', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const secret = `hdr-${Date.now().toString(36)}-q7Zk2`;
    const headers = { Authorization: `Bearer ${secret}`, 'X-Plain': secret, Accept: 'text/plain' };
    const created = await queue(a, {}, { kind: 'http.get', payload: { url: 'https://example.test/x', headers } });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    const shown = { Authorization: '[REDACTED]', 'X-Plain': '[REDACTED]', Accept: '[REDACTED]' };
    expect(created.json().payload).toEqual({ url: 'https://example.test/x', headers: shown });
    // At rest: sealed, so a database read (backup, dump) does not carry them.
    const stored = await db.adminPool.query('SELECT payload::text AS p FROM agentina.tasks WHERE id = $1', [id]);
    expect(stored.rows[0].p).not.toContain(secret);
    expect(stored.rows[0].p).toContain('agentina-sealed:v1:');

    const leased = (await next(a)).json().task;
    expect(leased.payload.headers).toEqual(headers);

    // The target echoed the headers back, and the agent reported them: scrubbed before storing.
    const echoed = { status: 200, body: `you sent Authorization: Bearer ${secret} and X-Plain: ${secret}` };
    expect((await report(a, id, { outcome: 'succeeded', result: echoed })).statusCode).toBe(200);
    const answers = [
      await inject({ method: 'GET', url: `/v1/admin/tasks/${id}`, headers: await staff.admin() }),
      await inject({ method: 'GET', url: `/v1/portal/tasks/${id}`, headers: await staff.customer(a.customerId) }),
      await inject({ method: 'GET', url: `/v1/admin/tasks?agentId=${a.agentId}`, headers: await staff.admin() }),
      await inject({ method: 'GET', url: '/v1/portal/tasks', headers: await staff.customer(a.customerId) }),
    ];
    for (const r of answers) {
      expect(r.statusCode).toBe(200);
      expect(r.body).not.toContain(secret);
    }
    expect(answers[0]!.json().payload.headers).toEqual(shown);
    const rows = await db.adminPool.query(
      "SELECT t.result::text AS r, (SELECT string_agg(data::text, ' ') FROM agentina.audit_events WHERE subject_id = t.id) AS audit FROM agentina.tasks t WHERE id = $1",
      [id],
    );
    expect(`${rows.rows[0].r} ${rows.rows[0].audit}`).not.toContain(secret);
    expect(built.logs.text()).not.toContain(secret);
  });

  it('a sealed header value copied into another task does not open there', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const first = (
      await queue(a, {}, { kind: 'http.get', payload: { url: 'https://e.test/', headers: { 'X-K': 'v1v1v1' } } })
    ).json().id as string;
    const second = (
      await queue(a, {}, { kind: 'http.get', payload: { url: 'https://e.test/', headers: { 'X-K': 'x' } } })
    ).json().id as string;
    // Someone with write access to the table moves a sealed value to a task of their own.
    await db.adminPool.query(
      "UPDATE agentina.tasks SET payload = jsonb_set(payload, '{headers,X-K}', (SELECT payload->'headers'->'X-K' FROM agentina.tasks WHERE id = $1)) WHERE id = $2",
      [first, second],
    );
    await db.adminPool.query("UPDATE agentina.tasks SET state = 'cancelled' WHERE id = $1", [first]);
    const res = await next(a);
    expect(res.statusCode).toBe(503);
    expect(res.body).not.toContain('v1v1v1');
  });

  it.each([
    ['headers that are not an object', ['x']],
    ['a header value that is not a string', { 'X-N': 5 }],
  ])('refuses an http.get task with %s', async (_label, headers) => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const res = await queue(a, {}, { kind: 'http.get', payload: { url: 'https://e.test/', headers } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('BAD_REQUEST');
  });

  it('gives one task to one caller even when the agent asks concurrently', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const id = (await queue(a)).json().id;
    const answers = await Promise.all(Array.from({ length: 6 }, () => next(a)));
    const tasks = answers.map((r) => r.json().task).filter(Boolean);
    expect(tasks).toHaveLength(1);
    expect(tasks[0].id).toBe(id);
  });

  it('leases tasks oldest first, one per call', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const first = (await queue(a)).json().id;
    clock.advance(1);
    const second = (await queue(a)).json().id;
    expect((await next(a)).json().task.id).toBe(first);
    expect((await next(a)).json().task.id).toBe(second);
  });

  it('re-offers a task whose lease expired (the agent crashed), and fails it after the last allowed attempt', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const id = (await queue(a, {}, { maxAttempts: 2 })).json().id;
    expect((await next(a)).json().task.id).toBe(id);
    clock.advance(LEASE_S * 1000 - 1);
    expect((await next(a)).json().task).toBeNull();
    clock.advance(2);
    const again = (await next(a)).json().task;
    expect(again.id).toBe(id);
    clock.advance(LEASE_S * 1000 + 1);
    expect((await next(a)).json().task).toBeNull();
    const view = (await inject({ method: 'GET', url: `/v1/admin/tasks/${id}`, headers: await staff.admin() })).json();
    expect(view).toMatchObject({ state: 'failed', attempts: 2 });
    expect((await audits(id)).at(-1)).toMatchObject({
      action: 'task.failed',
      actor_kind: 'system',
      data: expect.objectContaining({ outcome: 'lease_exhausted' }),
    });
  });

  it('heartbeats with tasks in flight keep the lease alive', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const id = (await queue(a)).json().id;
    await next(a);
    clock.advance(LEASE_S * 1000 - 1000);
    const hb = await inject({
      method: 'POST',
      url: '/v1/agent/heartbeat',
      headers: asAgent(a),
      payload: {
        agentVersion: '1.0.0',
        runtimeHash: 'a'.repeat(64),
        fingerprint: a.fingerprint,
        score: 100,
        changedComponents: [],
        inFlightTasks: 1,
      },
    });
    expect(hb.statusCode).toBe(200);
    clock.advance(2000);
    expect((await next(a)).json().task).toBeNull();
    expect((await report(a, id)).statusCode).toBe(200);
  });

  it('another agent cannot lease or report a task that is not its own (404), even on the same license', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const other = await createAgent(db.pool, a.licenseId, a.customerId, clock.now());
    const id = (await queue(a)).json().id;
    expect((await next(other)).json().task).toBeNull();
    expect((await next(a)).json().task.id).toBe(id);
    const stolen = await report(other, id);
    expect(stolen.statusCode).toBe(404);
    expect(stolen.json().error.code).toBe('NOT_FOUND');
    expect(
      (await inject({ method: 'GET', url: `/v1/admin/tasks/${id}`, headers: await staff.admin() })).json().state,
    ).toBe('leased');
    expect((await report(a, 'tsk_doesnotexist0000000000')).statusCode).toBe(404);
  });

  it('a result for a task that is not leased is a conflict', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const id = (await queue(a)).json().id;
    expect((await report(a, id)).statusCode).toBe(409);
  });

  it('records failed, interrupted and rejected outcomes as task.failed, with secrets scrubbed from the error', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    for (const outcome of ['failed', 'interrupted', 'rejected'] as const) {
      const id = (await queue(a)).json().id;
      await next(a);
      const res = await report(a, id, { outcome, error: 'upstream said Bearer abc.def.ghi and token=s3cret' });
      expect(res.json()).toEqual({ id, state: outcome });
      const view = (await inject({ method: 'GET', url: `/v1/admin/tasks/${id}`, headers: await staff.admin() })).json();
      expect(view.error).not.toMatch(/abc\.def\.ghi|s3cret/);
      expect((await audits(id)).at(-1)).toMatchObject({
        action: 'task.failed',
        data: expect.objectContaining({ outcome }),
      });
    }
  });

  it("a customer queues tasks for its own agents only: another customer's agent and tasks are 404s", async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const b = await createAgentWithLicense(db.pool, clock.now());
    const refused = await queue(a, { customer: b.customerId });
    expect(refused.statusCode).toBe(404);
    expect(refused.json().error.code).toBe('NOT_FOUND');
    expect(
      await db.adminPool.query('SELECT 1 FROM agentina.tasks WHERE agent_id = $1', [a.agentId]).then((r) => r.rowCount),
    ).toBe(0);

    const mine = await queue(a, { customer: a.customerId });
    expect(mine.statusCode).toBe(201);
    expect(mine.json().createdBy.kind).toBe('customer');
    const id = mine.json().id;
    expect(
      (await inject({ method: 'GET', url: `/v1/portal/tasks/${id}`, headers: await staff.customer(a.customerId) }))
        .statusCode,
    ).toBe(200);
    expect(
      (await inject({ method: 'GET', url: `/v1/portal/tasks/${id}`, headers: await staff.customer(b.customerId) }))
        .statusCode,
    ).toBe(404);
    const bList = await inject({ method: 'GET', url: '/v1/portal/tasks', headers: await staff.customer(b.customerId) });
    expect(bList.json().items).toEqual([]);
    const aList = await inject({
      method: 'GET',
      url: `/v1/portal/tasks?agentId=${a.agentId}`,
      headers: await staff.customer(a.customerId),
    });
    expect(aList.json().items.map((x: { id: string }) => x.id)).toEqual([id]);
    // Agents and customers cannot use the admin routes; admins see everything.
    expect(
      (await inject({ method: 'GET', url: '/v1/admin/tasks', headers: await staff.customer(a.customerId) })).statusCode,
    ).toBe(403);
    expect(
      (
        await inject({
          method: 'POST',
          url: '/v1/admin/tasks',
          headers: asAgent(a),
          payload: { agentId: a.agentId, kind: 'echo', payload: {} },
        })
      ).statusCode,
    ).toBe(403);
    expect(
      (
        await inject({ method: 'GET', url: `/v1/admin/tasks?agentId=${a.agentId}`, headers: await staff.admin() })
      ).json().items,
    ).toHaveLength(1);
  });

  it("cancels a queued or leased task (audited); the agent's late result is refused; others' tasks are 404s", async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const b = await createAgentWithLicense(db.pool, clock.now());
    const queued = (await queue(a)).json().id;
    expect(
      (
        await inject({
          method: 'POST',
          url: `/v1/portal/tasks/${queued}/cancel`,
          headers: await staff.customer(b.customerId),
        })
      ).statusCode,
    ).toBe(404);
    const c1 = await inject({
      method: 'POST',
      url: `/v1/portal/tasks/${queued}/cancel`,
      headers: await staff.customer(a.customerId),
    });
    expect(c1.statusCode).toBe(200);
    expect(c1.json().state).toBe('cancelled');
    expect((await next(a)).json().task).toBeNull();

    const leased = (await queue(a)).json().id;
    expect((await next(a)).json().task.id).toBe(leased);
    expect(
      (await inject({ method: 'POST', url: `/v1/admin/tasks/${leased}/cancel`, headers: await staff.admin() }))
        .statusCode,
    ).toBe(200);
    expect((await report(a, leased)).statusCode).toBe(409);
    expect(
      (await inject({ method: 'POST', url: `/v1/admin/tasks/${leased}/cancel`, headers: await staff.admin() }))
        .statusCode,
    ).toBe(409);
    expect((await audits(leased)).map((e: { action: string }) => e.action)).toEqual(['task.created', 'task.cancelled']);
  });

  it.each([
    ['an unknown kind', { kind: 'shell' }, 400],
    ['a payload that is not an object', { payload: ['x'] }, 400],
    ['an unknown field', { priority: 1 }, 400],
    ['a payload over 64 KiB', { payload: { blob: 'x'.repeat(70 * 1024) } }, 413],
    ['a NUL character in the payload', { payload: { text: 'a\u0000b' } }, 400],
    ['an unknown agent', { agentId: 'agt_doesnotexist0000000000' }, 404],
  ])('refuses a task with %s', async (_label, body, status) => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const res = await queue(a, {}, body);
    expect(res.statusCode).toBe(status);
    expect(res.json().error.requestId).toEqual(expect.any(String));
  });

  it('accepts a payload and a result just under 64 KiB made of many small fields', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    // jsonb's text form is larger than JSON.stringify's (a space after each ':' and ','): the limit is the API's.
    const many = Object.fromEntries(
      Array.from({ length: 60 }, (_, i) => [
        `k${i}`,
        Object.fromEntries(Array.from({ length: 110 }, (_, j) => [`f${j}`, 0])),
      ]),
    );
    expect(Buffer.byteLength(JSON.stringify(many))).toBeLessThan(64 * 1024);
    const created = await queue(a, {}, { payload: many });
    expect(created.statusCode).toBe(201);
    const stored = await db.adminPool.query(
      'SELECT octet_length(payload::text) AS n FROM agentina.tasks WHERE id = $1',
      [created.json().id],
    );
    expect(stored.rows[0].n).toBeGreaterThan(64 * 1024);
    await next(a);
    expect((await report(a, created.json().id, { outcome: 'succeeded', result: many })).statusCode).toBe(200);
  });

  it('refuses an oversized or malformed result', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const id = (await queue(a)).json().id;
    await next(a);
    expect((await report(a, id, { outcome: 'succeeded', result: 'x'.repeat(70 * 1024) })).statusCode).toBe(413);
    expect((await report(a, id, { outcome: 'done' })).statusCode).toBe(400);
    expect((await report(a, id, { outcome: 'succeeded', result: { t: '\u0000' } })).statusCode).toBe(400);
  });

  it.each([
    [
      'quarantined',
      async (a: AgentFixture) =>
        db.adminPool.query(`UPDATE agentina.agents SET status = 'quarantined' WHERE id = $1`, [a.agentId]),
    ],
    [
      'license suspended',
      async (a: AgentFixture) =>
        db.adminPool.query(`UPDATE agentina.licenses SET state = 'suspended' WHERE id = $1`, [a.licenseId]),
    ],
    [
      'license revoked',
      async (a: AgentFixture) =>
        db.adminPool.query(`UPDATE agentina.licenses SET state = 'revoked' WHERE id = $1`, [a.licenseId]),
    ],
    [
      'license expired',
      async (a: AgentFixture) =>
        db.adminPool.query(`UPDATE agentina.licenses SET state = 'expired' WHERE id = $1`, [a.licenseId]),
    ],
  ])('gives no task to an agent that may not work (%s)', async (_label, spoil) => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const id = (await queue(a)).json().id;
    await spoil(a);
    expect((await next(a)).json().task).toBeNull();
    expect(
      (await inject({ method: 'GET', url: `/v1/admin/tasks/${id}`, headers: await staff.admin() })).json().state,
    ).toBe('queued');
  });

  it('parks a long-poll until a task is queued for the agent, then leases it', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const parked = next(a, 20);
    // Let the request reach its park before queueing.
    await new Promise((r) => setTimeout(r, 300));
    const id = (await queue(a)).json().id;
    const res = await parked;
    expect(res.json().task?.id).toBe(id);
  });
});
