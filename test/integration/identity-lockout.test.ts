import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createIdentityActivities } from '../../activities/identity-activities';
import type { App } from '../../api/app';
import { createFixedClock } from '../../protocol';
import { SCHEDULES } from '../../worker/schedules';
import { lockoutWorkflowId } from '../../workflows/account-lockout';
import { buildTestApp, testConfig, testServices } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import {
  SAME_ORIGIN,
  TEST_PASSWORD,
  mintSession,
  nextIp,
  seedAdmin,
  seedCustomer,
  seedCustomerUser,
} from '../support/identity';
import { eventually } from '../support/license-helpers';
import { quietTemporalRuntime, runWorkerInBackground, testTemporalDeps } from '../support/temporal';

/** Five failures lock for 15 minutes; the accountLockout workflow ends the lock on the time-skipping server. */
describe('identity: lockout', () => {
  let db: TestDatabase;
  let env: TestWorkflowEnvironment;
  let stopWorker: () => Promise<void>;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let app: App;
  const taskQueue = 'identity-lockout';
  // The API's clock starts where the time-skipping server's clock is, so lock ends agree.
  let clock: ReturnType<typeof createFixedClock>;

  beforeAll(async () => {
    quietTemporalRuntime();
    db = await createTestDatabase('lockout');
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: testEnv('AGENTINA_TEST_TIME_SKIPPING_SERVER') } },
    });
    clock = createFixedClock(new Date(await env.currentTimeMs()));
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: { codePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') },
      activities: createIdentityActivities(testServices({ pool: db.pool, clock })),
    });
    stopWorker = runWorkerInBackground(worker);
    const temporal = testTemporalDeps(env.client, taskQueue);
    t = await buildTestApp({ pool: db.pool, clock, temporal });
    app = t.app;
  });
  afterAll(async () => {
    await t?.close();
    await stopWorker?.();
    await env?.teardown();
    await db?.drop();
  });

  // The test server's clock may jump while a result is awaited; each test starts from where it is.
  beforeEach(async () => {
    clock.set(new Date(await env.currentTimeMs()));
  });

  const attempt = (kind: 'admin' | 'portal', email: string, password: string, ip = nextIp()) =>
    app.inject({
      method: 'POST',
      url: `/v1/${kind}/login`,
      remoteAddress: ip,
      headers: { 'content-type': 'application/json' },
      payload: { email, password },
    });
  /** The lockout timer's handle, once its (background) start has happened. */
  const timerOf = async (kind: 'admin' | 'customer', id: string) => {
    const handle = env.client.workflow.getHandle(lockoutWorkflowId(kind, id));
    await eventually(
      () => handle.describe(),
      () => true,
      20000,
      `lockout timer of ${id}`,
    );
    return handle;
  };
  const account = async (table: string, id: string) =>
    (await db.pool.query(`SELECT failed_logins, locked_until FROM ${table} WHERE id = $1`, [id])).rows[0];
  const audits = async (subjectId: string) =>
    (
      await db.pool.query('SELECT action, actor_kind, actor_id FROM audit_events WHERE subject_id = $1 ORDER BY seq', [
        subjectId,
      ])
    ).rows;

  it('locks on the 5th failure, refuses even the right password the same way, and the workflow unlocks after 15 minutes', async () => {
    const admin = await seedAdmin(db.pool);
    for (let i = 1; i <= 4; i++) {
      const r = await attempt('admin', admin.email, `wrong password ${i}`);
      expect(r.statusCode).toBe(401);
      expect(r.headers['retry-after']).toBeUndefined();
    }
    expect((await account('admins', admin.id)).failed_logins).toBe(4);

    const fifth = await attempt('admin', admin.email, 'wrong password 5');
    expect(fifth.statusCode).toBe(401);
    // No Retry-After: it would tell a locked (so real) account from an unknown email.
    expect(fifth.headers['retry-after']).toBeUndefined();
    const locked = await account('admins', admin.id);
    expect(locked.locked_until.getTime()).toBe(clock.now().getTime() + 15 * 60_000);

    // The timer is started in the background (the locking answer takes no longer than another).
    const handle = env.client.workflow.getHandle(lockoutWorkflowId('admin', admin.id));
    const firstRun = (await timerOf('admin', admin.id).then((h) => h.describe())).runId;

    // While locked the right password gets the wrong password's answer, and is audited.
    clock.advance(60_000);
    const right = await attempt('admin', admin.email, TEST_PASSWORD);
    expect(right.statusCode).toBe(401);
    expect(right.json().error.message).toBe(fifth.json().error.message);
    expect(right.headers['retry-after']).toBeUndefined();
    expect(right.headers['set-cookie']).toBeUndefined();
    expect((await attempt('admin', admin.email, 'wrong again')).statusCode).toBe(401);
    expect((await account('admins', admin.id)).failed_logins).toBe(5);
    expect((await handle.describe()).runId).toBe(firstRun);

    const before = await env.currentTimeMs();
    expect(await handle.result()).toBe('unlocked');
    expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(14 * 60_000);
    expect(await account('admins', admin.id)).toEqual({ failed_logins: 0, locked_until: null });

    const trail = await audits(admin.id);
    expect(trail.map((a) => a.action)).toEqual([
      'login.failed',
      'login.failed',
      'login.failed',
      'login.failed',
      'login.failed',
      'account.locked',
      'login.refused_locked',
      'login.refused_locked',
      'account.unlocked',
    ]);
    expect(trail.at(-1)).toEqual({
      action: 'account.unlocked',
      actor_kind: 'workflow',
      actor_id: lockoutWorkflowId('admin', admin.id),
    });

    // The clock has not moved past locked_until: the workflow, not the clock, ended this lock.
    expect((await attempt('admin', admin.email, TEST_PASSWORD)).statusCode).toBe(200);
  });

  it('an admin can unlock early (audited); the timer then finds nothing to do', async () => {
    const customer = await seedCustomer(db.pool);
    const user = await seedCustomerUser(db.pool, customer.id);
    for (let i = 0; i < 5; i++) await attempt('portal', user.email, `nope ${i}`);
    expect((await account('customer_users', user.id)).locked_until).not.toBeNull();
    expect((await attempt('portal', user.email, TEST_PASSWORD)).statusCode).toBe(401);

    const admin = await seedAdmin(db.pool, { cheap: true });
    const s = await mintSession(db.pool, 'admin', admin, clock);
    const res = await app.inject({
      method: 'POST',
      url: `/v1/admin/customers/${customer.id}/users/${user.id}/unlock`,
      headers: { cookie: s.cookie, ...SAME_ORIGIN },
      payload: {},
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ unlocked: true });
    expect((await attempt('portal', user.email, TEST_PASSWORD)).statusCode).toBe(200);

    expect(await (await timerOf('customer', user.id)).result()).toBe('already_clear');
    const trail = await audits(user.id);
    expect(trail.filter((a) => a.action === 'customer_user.unlocked')).toEqual([
      { action: 'customer_user.unlocked', actor_kind: 'admin', actor_id: admin.id },
    ]);
    expect(trail.some((a) => a.action === 'account.unlocked')).toBe(false);
  });

  it('parallel guesses cannot slip past the threshold: exactly five failures, one lock, the rest refused as locked', async () => {
    const admin = await seedAdmin(db.pool);
    const answers = await Promise.all(
      Array.from({ length: 9 }, (_, i) => attempt('admin', admin.email, `parallel guess ${i}`)),
    );
    expect(answers.every((a) => a.statusCode === 401)).toBe(true);
    const counts = Object.fromEntries(
      (
        await db.pool.query(
          'SELECT action, count(*)::int AS n FROM audit_events WHERE subject_id = $1 GROUP BY action',
          [admin.id],
        )
      ).rows.map((r) => [r.action, r.n]),
    );
    expect(counts).toEqual({ 'login.failed': 5, 'account.locked': 1, 'login.refused_locked': 4 });
    expect((await account('admins', admin.id)).failed_logins).toBe(5);
    expect(await (await timerOf('admin', admin.id)).result()).toBe('unlocked');
  });

  it('one address cannot lock an account: 4 failures per window, then 429 alike for a real and an unknown email', async () => {
    const victim = await seedAdmin(db.pool);
    const attacker = nextIp();
    const throttled: Awaited<ReturnType<typeof attempt>>[] = [];
    // Two windows: ten attempts, all this address may make in a minute anyway (LOGIN_RATE_LIMIT).
    for (let window = 0; window < 2; window++) {
      for (let i = 0; i < 4; i++)
        expect((await attempt('admin', victim.email, `guess ${window}.${i}`, attacker)).statusCode).toBe(401);
      // The 5th in the window is refused before any password is checked, for any spelling.
      throttled.push(await attempt('admin', victim.email.toUpperCase(), TEST_PASSWORD, attacker));
      expect(await account('admins', victim.id)).toEqual({ failed_logins: 4, locked_until: null });
      clock.advance(15 * 60_000);
    }
    // An email nobody has is throttled the same way: the 429 tells nothing about existence.
    const other = nextIp();
    const unknown = `nobody-${victim.id}@example.test`;
    for (let i = 0; i < 4; i++) expect((await attempt('admin', unknown, 'guess', other)).statusCode).toBe(401);
    throttled.push(await attempt('admin', unknown, 'guess', other));
    const shape = (r: (typeof throttled)[number]) => {
      const id = r.headers['x-request-id'] as string;
      const { 'x-request-id': _id, date: _date, ...headers } = r.headers;
      return { status: r.statusCode, headers, body: r.body.replaceAll(id, '<request id>') };
    };
    expect(shape(throttled[0]!)).toMatchObject({ status: 429, headers: { 'retry-after': '900' } });
    expect(JSON.parse(shape(throttled[0]!).body).error.code).toBe('RATE_LIMITED');
    for (const r of throttled) expect(shape(r)).toEqual(shape(throttled[0]!));

    // The victim, from its own address, signs in at once: the attacker's budget is not its own.
    expect((await attempt('admin', victim.email, TEST_PASSWORD)).statusCode).toBe(200);
    expect(await account('admins', victim.id)).toEqual({ failed_logins: 0, locked_until: null });
    // The lock itself is unchanged: five failures in the window from more than one address lock.
    const third = nextIp();
    for (let i = 0; i < 4; i++) await attempt('admin', victim.email, `again ${i}`, third);
    expect((await attempt('admin', victim.email, 'from elsewhere', nextIp())).statusCode).toBe(401);
    expect((await account('admins', victim.id)).locked_until).not.toBeNull();
    expect(await (await timerOf('admin', victim.id)).result()).toBe('unlocked');
  });

  it('a sign-in forgives its address: the budget is for failures only', async () => {
    const admin = await seedAdmin(db.pool);
    const ip = nextIp();
    for (let i = 0; i < 3; i++) await attempt('admin', admin.email, `typo ${i}`, ip);
    expect((await attempt('admin', admin.email, TEST_PASSWORD, ip)).statusCode).toBe(200);
    for (let i = 0; i < 4; i++)
      expect((await attempt('admin', admin.email, `typo again ${i}`, ip)).statusCode).toBe(401);
    expect((await attempt('admin', admin.email, TEST_PASSWORD, ip)).statusCode).toBe(429);
  });

  it('a success before the 5th failure resets the counter; a lock that ran out no longer counts', async () => {
    const admin = await seedAdmin(db.pool);
    for (let i = 0; i < 4; i++) await attempt('admin', admin.email, `bad ${i}`);
    expect((await attempt('admin', admin.email, TEST_PASSWORD)).statusCode).toBe(200);
    expect((await account('admins', admin.id)).failed_logins).toBe(0);

    // A lock whose time has passed in the database but whose timer has not tidied up yet.
    await db.pool.query('UPDATE admins SET failed_logins = 5, locked_until = $2 WHERE id = $1', [
      admin.id,
      new Date(clock.now().getTime() - 1000),
    ]);
    expect((await attempt('admin', admin.email, 'bad again')).statusCode).toBe(401);
    expect((await account('admins', admin.id)).failed_logins).toBe(1);
  });

  it('the scheduled purgeExpiredSessions workflow deletes idle and over-age sessions only', async () => {
    const admin = await seedAdmin(db.pool, { cheap: true });
    const now = clock.now().getTime();
    const fresh = await mintSession(db.pool, 'admin', admin, clock);
    const idle = await mintSession(db.pool, 'admin', admin, clock);
    const old = await mintSession(db.pool, 'admin', admin, clock);
    await db.pool.query('UPDATE admin_sessions SET last_seen_at = $2 WHERE id = $1', [
      idle.sessionId,
      new Date(now - 9 * 3600_000),
    ]);
    await db.pool.query('UPDATE admin_sessions SET expires_at = $2 WHERE id = $1', [
      old.sessionId,
      new Date(now - 1000),
    ]);

    const entry = SCHEDULES.map((make) => make(testConfig())).find((e) => e.id === 'agentina-session-purge');
    expect(entry?.workflowType).toBe('purgeExpiredSessions');
    const purged = await env.client.workflow.execute('purgeExpiredSessions', {
      taskQueue,
      workflowId: `purge-${now}`,
      args: [],
    });
    // Earlier tests' sessions are long past too (the test server's clock jumps), so at least these two.
    expect(purged.admin).toBeGreaterThanOrEqual(2);
    const { rows } = await db.pool.query('SELECT id FROM admin_sessions WHERE admin_id = $1', [admin.id]);
    expect(rows.map((r) => r.id)).toEqual([fresh.sessionId]);
  });
});
