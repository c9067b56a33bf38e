import type { App } from '../../api/app';
import { LOGIN_RATE_LIMIT } from '../../api/identity/auth-routes';
import { sha256Hex } from '../../services/secrets';
import { createFixedClock } from '../../protocol';
import { createSessionService, SERVICE_TOKEN_TOUCH_MS } from '../../services/identity/session-service';
import { createTemporal } from '../../services/temporal';
import { freePort } from '../../scripts/stack/ports';
import { buildTestApp, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import {
  SAME_ORIGIN,
  TEST_PASSWORD,
  cookieFrom,
  mintSession,
  nextIp,
  seedAdmin,
  seedCustomer,
  seedCustomerUser,
  seedServiceAccount,
  uniqueEmail,
} from '../support/identity';

/** The identity admin API: accounts, deactivation, passwords, service accounts, rate limits, what a dump holds. */
describe('identity: admin API', () => {
  let db: TestDatabase;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let app: App;

  beforeAll(async () => {
    db = await createTestDatabase('identadmin');
    t = await buildTestApp({ pool: db.pool });
    app = t.app;
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const as = (cookie: string) => ({
    get: (url: string) => app.inject({ method: 'GET', url, headers: { cookie } }),
    post: (url: string, payload: object = {}) =>
      app.inject({ method: 'POST', url, headers: { cookie, ...SAME_ORIGIN }, payload }),
  });
  const bearer = (token: string) => ({
    get: (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } }),
    post: (url: string, payload?: object) =>
      app.inject({
        method: 'POST',
        url,
        headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
        ...(payload ? { payload } : {}),
      }),
  });
  const login = (kind: 'admin' | 'portal', email: string, password: string, ip = nextIp()) =>
    app.inject({
      method: 'POST',
      url: `/v1/${kind}/login`,
      remoteAddress: ip,
      headers: { 'content-type': 'application/json' },
      payload: { email, password },
    });
  const lastAudit = async (action: string) =>
    (
      await db.pool.query(
        'SELECT actor_kind, actor_id, subject_kind, subject_id, data FROM audit_events WHERE action = $1 ORDER BY seq DESC LIMIT 1',
        [action],
      )
    ).rows[0];

  it('creates an admin with a one-time password that must be changed, audited with the acting admin', async () => {
    const boss = await seedAdmin(db.pool, { cheap: true });
    const s = await mintSession(db.pool, 'admin', boss);
    const email = uniqueEmail('new-admin');
    const res = await as(s.cookie).post('/v1/admin/admins', { email, displayName: 'New' });
    expect(res.statusCode).toBe(201);
    const { admin, oneTimePassword } = res.json();
    expect(admin).toMatchObject({ email, mustChangePassword: true, active: true });
    expect(oneTimePassword).toMatch(/^[A-Za-z0-9]{20}$/);
    expect(await lastAudit('admin.created')).toMatchObject({
      actor_kind: 'admin',
      actor_id: boss.id,
      subject_id: admin.id,
    });
    expect(JSON.stringify(await lastAudit('admin.created'))).not.toContain(oneTimePassword);
    expect(t.logs.text()).not.toContain(oneTimePassword);

    expect((await as(s.cookie).post('/v1/admin/admins', { email: email.toUpperCase() })).statusCode).toBe(409);
    const weak = await as(s.cookie).post('/v1/admin/admins', { email: uniqueEmail('weak'), password: 'short' });
    expect(weak.statusCode).toBe(400);
    expect(weak.json().error.message).toMatch(/too short/);
    expect((await as(s.cookie).post('/v1/admin/admins', { email: 'not-an-email' })).statusCode).toBe(400);

    const first = await login('admin', email, oneTimePassword);
    expect(first.statusCode).toBe(200);
    expect(first.json().account.mustChangePassword).toBe(true);
    // Until the one-time password is replaced, the session can do nothing else.
    const otp = cookieFrom(first.headers['set-cookie']);
    expect((await as(otp).get('/v1/admin/me')).statusCode).toBe(200);
    const blocked = await as(otp).get('/v1/admin/admins');
    expect(blocked.statusCode).toBe(403);
    expect(blocked.json().error.message).toMatch(/one-time password/);
    expect((await as(otp).post('/v1/admin/customers', { name: 'Not yet' })).statusCode).toBe(403);
    expect(
      (
        await as(otp).post('/v1/admin/me/password', {
          currentPassword: oneTimePassword,
          newPassword: 'my own long password',
        })
      ).statusCode,
    ).toBe(200);
    expect((await as(otp).get('/v1/admin/admins')).statusCode).toBe(200);
    expect((await as(otp).get('/v1/admin/me')).json().mustChangePassword).toBe(false);
  });

  it('changing your own password ends your other sessions and keeps this one', async () => {
    const admin = await seedAdmin(db.pool);
    const a = cookieFrom((await login('admin', admin.email, TEST_PASSWORD)).headers['set-cookie']);
    const b = cookieFrom((await login('admin', admin.email, TEST_PASSWORD)).headers['set-cookie']);
    const wrong = await as(a).post('/v1/admin/me/password', {
      currentPassword: 'not my password',
      newPassword: 'a brand new long password',
    });
    expect(wrong.statusCode).toBe(400);
    const ok = await as(a).post('/v1/admin/me/password', {
      currentPassword: TEST_PASSWORD,
      newPassword: 'a brand new long password',
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ otherSessionsEnded: 1 });
    expect((await as(a).get('/v1/admin/me')).statusCode).toBe(200);
    expect((await as(b).get('/v1/admin/me')).statusCode).toBe(401);
    expect((await login('admin', admin.email, TEST_PASSWORD)).statusCode).toBe(401);
    expect((await login('admin', admin.email, 'a brand new long password')).statusCode).toBe(200);
    expect(await lastAudit('admin.password_changed')).toMatchObject({
      actor_kind: 'admin',
      actor_id: admin.id,
      data: { otherSessionsEnded: 1 },
    });
  });

  it('deactivating an admin kills their live session at once; reactivation does not revive it', async () => {
    const boss = await seedAdmin(db.pool, { cheap: true });
    const victim = await seedAdmin(db.pool, { cheap: true });
    const bs = await mintSession(db.pool, 'admin', boss);
    const vs = await mintSession(db.pool, 'admin', victim);
    expect((await as(vs.cookie).get('/v1/admin/me')).statusCode).toBe(200);

    const off = await as(bs.cookie).post(`/v1/admin/admins/${victim.id}/deactivate`);
    expect(off.statusCode).toBe(200);
    expect(off.json().active).toBe(false);
    expect((await as(vs.cookie).get('/v1/admin/me')).statusCode).toBe(401);
    expect(
      (await db.pool.query('SELECT count(*)::int AS n FROM admin_sessions WHERE admin_id = $1', [victim.id])).rows[0].n,
    ).toBe(0);
    expect(await lastAudit('admin.deactivated')).toMatchObject({
      actor_id: boss.id,
      subject_id: victim.id,
      data: { sessionsEnded: 1 },
    });

    expect((await as(bs.cookie).post(`/v1/admin/admins/${victim.id}/reactivate`)).json().active).toBe(true);
    expect((await as(vs.cookie).get('/v1/admin/me')).statusCode).toBe(401);
    expect((await as(bs.cookie).post(`/v1/admin/admins/${boss.id}/deactivate`)).statusCode).toBe(409);
    expect((await as(bs.cookie).post('/v1/admin/admins/adm_AAAAAAAAAAAAAAAAAAAAAA/deactivate')).statusCode).toBe(404);
    expect((await as(bs.cookie).post('/v1/admin/admins/nope/deactivate')).statusCode).toBe(400);
  });

  it('deactivating a customer user kills their live portal session at once', async () => {
    const boss = await seedAdmin(db.pool, { cheap: true });
    const bs = await mintSession(db.pool, 'admin', boss);
    const customer = (await as(bs.cookie).post('/v1/admin/customers', { name: 'Umbrella' })).json();
    const created = await as(bs.cookie).post(`/v1/admin/customers/${customer.id}/users`, {
      email: uniqueEmail('portal'),
      password: TEST_PASSWORD,
    });
    expect(created.statusCode).toBe(201);
    const user = created.json().user;
    expect(created.json().oneTimePassword).toBeUndefined();
    const portal = cookieFrom((await login('portal', user.email, TEST_PASSWORD)).headers['set-cookie']);
    expect((await as(portal).get('/v1/portal/me')).statusCode).toBe(200);

    const listed = await as(bs.cookie).get(`/v1/admin/customers/${customer.id}/users`);
    expect(listed.json().users.map((u: { id: string }) => u.id)).toEqual([user.id]);
    expect(
      (await as(bs.cookie).post(`/v1/admin/customers/${customer.id}/users/${user.id}/deactivate`)).statusCode,
    ).toBe(200);
    expect((await as(portal).get('/v1/portal/me')).statusCode).toBe(401);
    expect(await lastAudit('customer_user.deactivated')).toMatchObject({
      actor_kind: 'admin',
      actor_id: boss.id,
      subject_id: user.id,
      data: { sessionsEnded: 1 },
    });

    // Another customer's id in the path: the user is not found there.
    const other = await seedCustomer(db.pool);
    expect((await as(bs.cookie).post(`/v1/admin/customers/${other.id}/users/${user.id}/reactivate`)).statusCode).toBe(
      404,
    );
  });

  it('service accounts: token shown once, stored as sha256, last_used_at tracked, audited as system, revocable', async () => {
    const boss = await seedAdmin(db.pool, { cheap: true });
    const bs = await mintSession(db.pool, 'admin', boss);
    const created = await as(bs.cookie).post('/v1/admin/service-accounts', {
      name: 'provisioning bot',
      scopes: ['customers:read', 'customers:write'],
    });
    expect(created.statusCode).toBe(201);
    const { serviceAccount, token } = created.json();
    expect(token).toMatch(/^svc_[A-Za-z0-9_-]{43}$/);
    expect(serviceAccount.tokenHint).toBe(token.slice(-4));
    const stored = (await db.adminPool.query('SELECT * FROM service_accounts WHERE id = $1', [serviceAccount.id]))
      .rows[0];
    expect(stored.token_hash).toBe(sha256Hex(token));
    expect(JSON.stringify(stored)).not.toContain(token);
    const listing = await as(bs.cookie).get('/v1/admin/service-accounts');
    expect(listing.body).not.toContain(token);
    expect(
      listing.json().serviceAccounts.find((x: { id: string }) => x.id === serviceAccount.id).lastUsedAt,
    ).toBeNull();

    const bot = bearer(token);
    const made = await bot.post('/v1/admin/customers', { name: 'Made by a bot' });
    expect(made.statusCode).toBe(201);
    expect(await lastAudit('customer.created')).toMatchObject({
      actor_kind: 'system',
      actor_id: serviceAccount.id,
      subject_id: made.json().id,
    });
    // Bearer requests are not ambient credentials: no CSRF headers needed, and bodiless POSTs are fine.
    expect((await bot.post(`/v1/admin/customers/${made.json().id}/deactivate`)).statusCode).toBe(200);
    expect(await lastAudit('customer.deactivated')).toMatchObject({
      actor_kind: 'system',
      actor_id: serviceAccount.id,
    });
    expect(
      (await as(bs.cookie).get('/v1/admin/service-accounts'))
        .json()
        .serviceAccounts.find((x: { id: string }) => x.id === serviceAccount.id).lastUsedAt,
    ).not.toBeNull();

    // Not an operator: admin-only routes are forbidden to it.
    expect((await bot.get('/v1/admin/admins')).statusCode).toBe(403);
    expect((await bot.post('/v1/admin/service-accounts', { name: 'escalate' })).statusCode).toBe(403);

    // Near-miss tokens are nothing.
    const flipped = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    for (const bad of [flipped, `${token}x`, 'svc_', 'svc_short'])
      expect((await bearer(bad).get('/v1/admin/customers')).statusCode).toBe(401);
    // Someone else's bearer scheme (e.g. agent credentials) is left to its own resolver.
    expect((await bearer('agc_whatever').get('/v1/admin/customers')).statusCode).toBe(401);

    expect(
      (await as(bs.cookie).post(`/v1/admin/service-accounts/${serviceAccount.id}/revoke`)).json().revokedAt,
    ).not.toBeNull();
    expect((await bot.get('/v1/admin/customers')).statusCode).toBe(401);
    expect(await lastAudit('service_account.revoked')).toMatchObject({
      actor_kind: 'admin',
      actor_id: boss.id,
      subject_id: serviceAccount.id,
    });
  });

  it('a database dump holds no usable session or service token', async () => {
    const admin = await seedAdmin(db.pool);
    const customer = await seedCustomer(db.pool);
    const user = await seedCustomerUser(db.pool, customer.id);
    const adminCookie = cookieFrom((await login('admin', admin.email, TEST_PASSWORD)).headers['set-cookie']);
    const portalCookie = cookieFrom((await login('portal', user.email, TEST_PASSWORD)).headers['set-cookie']);
    const svc = await seedServiceAccount(db.pool);
    const dump = JSON.stringify([
      ...(await db.adminPool.query('SELECT * FROM admin_sessions')).rows,
      ...(await db.adminPool.query('SELECT * FROM customer_sessions')).rows,
      ...(await db.adminPool.query('SELECT * FROM service_accounts')).rows,
      ...(await db.adminPool.query('SELECT * FROM audit_events')).rows,
      ...(await db.adminPool.query('SELECT * FROM admins')).rows,
      ...(await db.adminPool.query('SELECT * FROM customer_users')).rows,
    ]);
    for (const secret of [adminCookie.split('=')[1]!, portalCookie.split('=')[1]!, svc.token, TEST_PASSWORD])
      expect(dump).not.toContain(secret);
    // What the dump does hold (hashes) is not a credential: presented as a cookie or a token, it is refused.
    const hashes = (
      await db.adminPool.query(
        'SELECT token_hash FROM admin_sessions UNION ALL SELECT token_hash FROM service_accounts',
      )
    ).rows.map((r) => r.token_hash as string);
    for (const h of hashes) {
      expect(
        (await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie: `__Host-agentina_admin=${h}` } }))
          .statusCode,
      ).toBe(401);
      expect((await bearer(`svc_${h}`).get('/v1/admin/customers')).statusCode).toBe(401);
    }
  });

  it('per-IP login rate limit: the 11th attempt in a minute from one address is 429, other addresses are unaffected', async () => {
    const ip = nextIp();
    const victims = await Promise.all([1, 2, 3].map(() => seedAdmin(db.pool, { cheap: true })));
    const codes: number[] = [];
    for (let i = 0; i < LOGIN_RATE_LIMIT.max + 2; i++)
      codes.push((await login('admin', victims[i % 3]!.email, 'guessing wrongly', ip)).statusCode);
    expect(codes.slice(0, LOGIN_RATE_LIMIT.max).every((c) => c === 401)).toBe(true);
    const limited = await login('admin', victims[0]!.email, 'guessing wrongly', ip);
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe('RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Not a single account reached the lockout threshold from that address.
    const { rows } = await db.pool.query('SELECT max(failed_logins)::int AS m FROM admins WHERE id = ANY($1)', [
      victims.map((v) => v.id),
    ]);
    expect(rows[0].m).toBeLessThan(5);
    expect((await login('admin', victims[0]!.email, 'guessing wrongly', nextIp())).statusCode).toBe(401);
  });

  it('with Temporal down, the lock still happens and is enforced from the database', async () => {
    const config = testConfig({ TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` });
    const temporal = createTemporal(config);
    const down = await buildTestApp({ pool: db.pool, temporal, config });
    try {
      const admin = await seedAdmin(db.pool);
      const attempt = (password: string) =>
        down.app.inject({
          method: 'POST',
          url: '/v1/admin/login',
          remoteAddress: nextIp(),
          headers: { 'content-type': 'application/json' },
          payload: { email: admin.email, password },
        });
      for (let i = 0; i < 4; i++) expect((await attempt(`bad ${i}`)).statusCode).toBe(401);
      const started = performance.now();
      const fifth = await attempt('bad 5');
      expect(fifth.statusCode).toBe(401);
      // The answer does not wait for Temporal (the timer's start goes on in the background).
      expect(performance.now() - started).toBeLessThan(1500);
      const { rows } = await db.pool.query('SELECT locked_until FROM admins WHERE id = $1', [admin.id]);
      expect(rows[0].locked_until.getTime()).toBeGreaterThan(Date.now() + 14 * 60_000);
      const right = await attempt(TEST_PASSWORD);
      expect(right.statusCode).toBe(401);
      // The timer's start gives up after its deadline and says so; only then is it safe to close.
      while (!/could not start the lockout timer/.test(down.logs.text())) await new Promise((r) => setTimeout(r, 200));
    } finally {
      await down.close();
      await temporal.close();
    }
  });

  it('a service token records when it was last used, written at most once a minute per token', async () => {
    const clock = createFixedClock(new Date('2031-01-01T00:00:00Z'));
    const sessions = createSessionService({ pool: db.pool, clock });
    const a = await seedServiceAccount(db.pool);
    const b = await seedServiceAccount(db.pool);
    const lastUsed = async (id: string) =>
      (
        await db.adminPool.query<{ last_used_at: Date | null }>(
          'SELECT last_used_at FROM service_accounts WHERE id = $1',
          [id],
        )
      ).rows[0]!.last_used_at;
    expect(await lastUsed(a.id)).toBeNull();
    const first = clock.now();
    expect(await sessions.resolveServiceToken(a.token)).toMatchObject({ kind: 'service', id: a.id });
    expect(await lastUsed(a.id)).toEqual(first);
    // A burst within the minute writes nothing more (no write load per request)...
    for (let i = 0; i < 5; i++) {
      clock.advance(10_000);
      await sessions.resolveServiceToken(a.token);
    }
    expect(await lastUsed(a.id)).toEqual(first);
    // ...and the other token's use is its own.
    expect(await lastUsed(b.id)).toBeNull();
    // Past the minute, the next use is recorded.
    clock.advance(SERVICE_TOKEN_TOUCH_MS);
    await sessions.resolveServiceToken(a.token);
    expect(await lastUsed(a.id)).toEqual(clock.now());
    // A near-miss token records nothing.
    clock.advance(SERVICE_TOKEN_TOUCH_MS + 1);
    const seen = await lastUsed(a.id);
    expect(
      await sessions.resolveServiceToken(`${a.token.slice(0, -1)}${a.token.endsWith('A') ? 'B' : 'A'}`),
    ).toBeNull();
    expect(await lastUsed(a.id)).toEqual(seen);
  });
});
