import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { InjectOptions } from 'fastify';
import { createFixedClock, DEFAULT_TASK_FEATURES } from '../../protocol';
import { buildTestApp, testConfig } from '../support/app';
import {
  type AgentFixture,
  asAgent,
  createAgent,
  createCustomer,
  createLicense,
  createStaff,
  subjectAudit,
  type Staff,
  withJsonBody,
} from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestKeysDir } from '../support/license-helpers';
import { connectTestTemporal, type TestTemporal, testTemporalDeps } from '../support/temporal';

/**
 * Entitlements on the control plane, as a customer (and an admin) trying to run what the license
 * does not grant: queueing is refused with a 403 naming the entitlement, leasing never hands out
 * an unentitled task, and the numeric caps hold under concurrent requests.
 */
describe('entitlements: the control plane runs only what the license grants', () => {
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let built: Awaited<ReturnType<typeof buildTestApp>>;
  let staff: Staff;
  const clock = createFixedClock(new Date('2026-11-26T12:00:00.000Z'));
  const inject = (opts: InjectOptions) => built.app.inject(withJsonBody(opts));

  const agentOn = async (features: Record<string, boolean | number | string>, count = 1) => {
    const customerId = await createCustomer(db.pool);
    const licenseId = await createLicense(db.pool, customerId, { features });
    const agents: AgentFixture[] = [];
    for (let i = 0; i < count; i++) agents.push(await createAgent(db.pool, licenseId, customerId, clock.now()));
    return agents;
  };
  const queue = async (a: AgentFixture, kind: string, payload: Record<string, unknown>, as: 'admin' | 'customer') =>
    inject({
      method: 'POST',
      url: as === 'customer' ? '/v1/portal/tasks' : '/v1/admin/tasks',
      headers: as === 'customer' ? await staff.customer(a.customerId) : await staff.admin(),
      payload: { agentId: a.agentId, kind, payload },
    });
  const next = (a: AgentFixture) => inject({ method: 'GET', url: '/v1/agent/tasks/next?wait=0', headers: asAgent(a) });
  const taskRows = async (agentId: string) =>
    (await db.adminPool.query('SELECT id, state, error FROM agentina.tasks WHERE agent_id = $1', [agentId])).rows;

  beforeAll(async () => {
    db = await createTestDatabase('entitlements');
    staff = createStaff(db.pool, clock);
    keys = createTestKeysDir();
    t = await connectTestTemporal('entitlements');
    const config = testConfig({ AGENTINA_KEYS_DIR: keys.dir });
    built = await buildTestApp({ pool: db.pool, temporal: testTemporalDeps(t.client, t.taskQueue), clock, config });
  });

  afterAll(async () => {
    await built?.close();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  it.each(['customer', 'admin'] as const)(
    'a %s queueing an unentitled http.get gets a 403 naming tasks.http_get, and nothing is written',
    async (as) => {
      const [a] = await agentOn({ 'tasks.echo': true, 'tasks.http_get': false });
      const res = await queue(a!, 'http.get', { url: 'https://example.test/' }, as);
      expect(res.statusCode).toBe(403);
      expect(res.json().error).toMatchObject({
        code: 'FORBIDDEN',
        details: [{ path: 'entitlement', message: 'tasks.http_get' }],
      });
      expect(res.json().error.message).toContain('tasks.http_get');
      expect(await taskRows(a!.agentId)).toEqual([]);
      expect((await queue(a!, 'echo', { n: 1 }, as)).statusCode).toBe(201);
    },
  );

  it('a feature that is not literally true grants nothing (a string "true", a 1, an absent name)', async () => {
    const [a] = await agentOn({ 'tasks.echo': 'true', 'tasks.sleep': 1 });
    for (const [kind, payload] of [
      ['echo', { n: 1 }],
      ['sleep', { ms: 1 }],
      ['http.get', { url: 'https://example.test/' }],
    ] as const)
      expect((await queue(a!, kind, payload, 'customer')).statusCode).toBe(403);
  });

  it('a task queued while granted is never leased once the grant is withdrawn: it is rejected and audited', async () => {
    const [a] = await agentOn({ ...DEFAULT_TASK_FEATURES });
    const id = (await queue(a!, 'http.get', { url: 'https://example.test/' }, 'admin')).json().id as string;
    // The terms change (as a license edit would write them) before the agent asks.
    await db.adminPool.query(
      `UPDATE agentina.licenses SET features = features || '{"tasks.http_get": false}' WHERE id = $1`,
      [a!.licenseId],
    );
    const res = await next(a!);
    expect(res.statusCode).toBe(200);
    expect(res.json().task).toBeNull();
    expect(await taskRows(a!.agentId)).toEqual([
      { id, state: 'rejected', error: 'the license does not grant this task kind' },
    ]);
    const audit = await subjectAudit(db.adminPool, id);
    expect(audit.map((r) => r.action)).toEqual(['task.created', 'task.failed']);
    expect(audit[1]!.data).toMatchObject({ outcome: 'not_entitled', kind: 'http.get' });
  });

  it('tasks.per_day: the cap holds against a burst of concurrent requests, and frees up after 24 hours', async () => {
    const [a] = await agentOn({ 'tasks.echo': true, 'tasks.per_day': 3 });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, n) => queue(a!, 'echo', { n }, 'customer')));
    expect(answers.filter((r) => r.statusCode === 201)).toHaveLength(3);
    const refused = answers.filter((r) => r.statusCode === 403);
    expect(refused).toHaveLength(5);
    expect(refused[0]!.json().error.message).toContain('tasks.per_day');
    expect(refused[0]!.json().error.details).toEqual([{ path: 'entitlement', message: 'tasks.per_day' }]);
    // A day passes for these tasks (the app's clock stays: the callers' sessions live on it).
    await db.adminPool.query(
      `UPDATE agentina.tasks SET created_at = created_at - interval '24 hours 1 millisecond' WHERE agent_id = $1`,
      [a!.agentId],
    );
    expect((await queue(a!, 'echo', { n: 9 }, 'customer')).statusCode).toBe(201);
  });

  it('tasks.max_concurrent: a second agent of the license gets nothing while the cap is leased, then the next task', async () => {
    const [a, b] = await agentOn({ 'tasks.echo': true, 'tasks.max_concurrent': 1 }, 2);
    const first = (await queue(a!, 'echo', { n: 1 }, 'admin')).json().id as string;
    const second = (await queue(b!, 'echo', { n: 2 }, 'admin')).json().id as string;
    // Both agents ask at once: exactly one lease.
    const [ra, rb] = await Promise.all([next(a!), next(b!)]);
    const leased = [ra.json().task, rb.json().task].filter(Boolean);
    expect(leased).toHaveLength(1);
    const holder = leased[0].id === first ? a! : b!;
    const waiting = holder === a ? b! : a!;
    expect((await next(waiting)).json().task).toBeNull();
    const done = await inject({
      method: 'POST',
      url: `/v1/agent/tasks/${leased[0].id}/result`,
      headers: asAgent(holder),
      payload: { outcome: 'succeeded', result: {} },
    });
    expect(done.statusCode).toBe(200);
    expect((await next(waiting)).json().task.id).toBe(leased[0].id === first ? second : first);
  });

  it('tasks.max_concurrent = 0 leases nothing', async () => {
    const [a] = await agentOn({ 'tasks.echo': true, 'tasks.max_concurrent': 0 });
    expect((await queue(a!, 'echo', { n: 1 }, 'admin')).statusCode).toBe(201);
    expect((await next(a!)).json().task).toBeNull();
  });

  describe('license creation writes task entitlements explicitly', () => {
    const create = async (extra: Record<string, unknown>) =>
      inject({
        method: 'POST',
        url: '/v1/admin/licenses',
        headers: await staff.admin(),
        payload: { customerId: await createCustomer(db.pool), plan: 'pro', maxAgents: 1, term: { days: 30 }, ...extra },
      });

    it('without features: every current task kind, as explicit true', async () => {
      const res = await create({});
      expect(res.statusCode).toBe(201);
      expect(res.json().license.features).toEqual(DEFAULT_TASK_FEATURES);
    });

    it('with features: exactly those, every task kind not named written as false', async () => {
      const res = await create({ features: { seats: 2, 'tasks.echo': true } });
      expect(res.statusCode).toBe(201);
      expect(res.json().license.features).toEqual({
        seats: 2,
        'tasks.echo': true,
        'tasks.sleep': false,
        'tasks.http_get': false,
      });
    });

    it.each([
      ['a task feature that is not a boolean', { 'tasks.echo': 'yes' }, 'features.tasks.echo'],
      ['a negative cap', { 'tasks.per_day': -1 }, 'features.tasks.per_day'],
      ['a fractional cap', { 'tasks.max_concurrent': 1.5 }, 'features.tasks.max_concurrent'],
      ['a cap given as a string', { 'tasks.per_day': '10' }, 'features.tasks.per_day'],
    ])('refuses %s with a 400 naming it', async (_label, features, where) => {
      const res = await create({ features });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.details).toEqual([expect.objectContaining({ path: where })]);
    });

    it('refuses features that leave no room for the task kinds in a signed document', async () => {
      const many = Object.fromEntries(Array.from({ length: 99 }, (_, i) => [`vendor.f${i}`, true]));
      const res = await create({ features: many });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toMatch(/at most 100 features/);
    });
  });

  it('migration 0095 grants the task kinds to a license from before entitlements, and leaves an explicit one alone', async () => {
    const customerId = await createCustomer(db.pool);
    const legacy = await createLicense(db.pool, customerId, { features: { seats: 5 } });
    const explicit = await createLicense(db.pool, customerId, { features: { 'tasks.echo': true } });
    const sql = readFileSync(path.join(__dirname, '../../db/migrations/0095_entitlements.sql'), 'utf8');
    const update = sql.slice(sql.indexOf('UPDATE licenses'), sql.indexOf(';', sql.indexOf('UPDATE licenses')) + 1);
    const c = await db.adminPool.connect();
    try {
      await c.query('SET search_path TO agentina');
      await c.query(update);
    } finally {
      c.release();
    }
    const features = async (id: string) =>
      (await db.adminPool.query('SELECT features FROM agentina.licenses WHERE id = $1', [id])).rows[0].features;
    expect(await features(legacy)).toEqual({ seats: 5, ...DEFAULT_TASK_FEATURES });
    expect(await features(explicit)).toEqual({ 'tasks.echo': true });
  });
});
