import type { App } from '../../api/app';
import { SESSION_IDLE_MS } from '../../services/identity/session-service';
import { ADMIN_COOKIE, PORTAL_COOKIE } from '../../api/identity/cookies';
import { sha256Hex } from '../../services/secrets';
import { createFixedClock } from '../../protocol';
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
} from '../support/identity';

/** Logins, sessions, cookies, CSRF and enumeration resistance through the real app and database. */
describe('identity: login and sessions', () => {
  let db: TestDatabase;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let app: App;
  const clock = createFixedClock(new Date('2026-03-01T10:00:00Z'));

  beforeAll(async () => {
    db = await createTestDatabase('identauth');
    t = await buildTestApp({ pool: db.pool, clock });
    app = t.app;
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const login = (kind: 'admin' | 'portal', body: unknown, ip = nextIp()) =>
    app.inject({
      method: 'POST',
      url: `/v1/${kind}/login`,
      payload: body as object,
      remoteAddress: ip,
      headers: { 'content-type': 'application/json' },
    });

  it('admin login sets a __Host- cookie with every attribute, stores only the sha256, and /me works', async () => {
    const admin = await seedAdmin(db.pool);
    const res = await login('admin', { email: admin.email.toUpperCase(), password: TEST_PASSWORD });
    expect(res.statusCode).toBe(200);
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(new RegExp(`^${ADMIN_COOKIE}=sess_[A-Za-z0-9_-]{43}; `));
    for (const attr of ['Path=/', 'Secure', 'HttpOnly', 'SameSite=Strict'])
      expect(setCookie.split('; ')).toContain(attr);
    expect(setCookie).not.toMatch(/Domain=/i);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json().account).toMatchObject({ id: admin.id, email: admin.email });
    const cookie = cookieFrom(res.headers['set-cookie']);
    const token = cookie.split('=')[1]!;

    const { rows } = await db.adminPool.query('SELECT * FROM admin_sessions WHERE admin_id = $1', [admin.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0].token_hash).toBe(sha256Hex(token));
    expect(JSON.stringify(rows)).not.toContain(token);

    const me = await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie } });
    expect(me.statusCode).toBe(200);
    expect(me.json().id).toBe(admin.id);
    expect(t.logs.text()).not.toContain(token);
    expect(t.logs.text()).not.toContain(TEST_PASSWORD);
  });

  it('every login issues a new session, never a reused one', async () => {
    const admin = await seedAdmin(db.pool);
    const first = await login('admin', { email: admin.email, password: TEST_PASSWORD });
    const second = await app.inject({
      method: 'POST',
      url: '/v1/admin/login',
      remoteAddress: nextIp(),
      headers: { cookie: cookieFrom(first.headers['set-cookie']), 'content-type': 'application/json' },
      payload: { email: admin.email, password: TEST_PASSWORD },
    });
    expect(second.statusCode).toBe(200);
    expect(cookieFrom(second.headers['set-cookie'])).not.toBe(cookieFrom(first.headers['set-cookie']));
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM admin_sessions WHERE admin_id = $1', [
      admin.id,
    ]);
    expect(rows[0].n).toBe(2);
  });

  it('unknown email, wrong password, deactivated and locked accounts get byte-identical answers (but the request id)', async () => {
    const admin = await seedAdmin(db.pool);
    const off = await seedAdmin(db.pool, { active: false });
    const locked = await seedAdmin(db.pool);
    // Locked as five failures from five addresses leave it (a lock the attacker may have caused).
    for (let i = 0; i < 5; i++)
      expect((await login('admin', { email: locked.email, password: `bad ${i}` })).statusCode).toBe(401);
    expect(
      (await db.pool.query('SELECT locked_until FROM admins WHERE id = $1', [locked.id])).rows[0].locked_until,
    ).not.toBeNull();

    const answers = {
      unknown: await login('admin', { email: 'nobody@example.test', password: TEST_PASSWORD }),
      wrong: await login('admin', { email: admin.email, password: 'wrong password here' }),
      deactivated: await login('admin', { email: off.email, password: TEST_PASSWORD }),
      lockedRightPassword: await login('admin', { email: locked.email, password: TEST_PASSWORD }),
      lockedWrongPassword: await login('admin', { email: locked.email, password: 'still guessing' }),
    };
    const shape = (a: (typeof answers)['unknown']) => {
      const id = a.headers['x-request-id'] as string;
      const headers = Object.fromEntries(
        Object.entries(a.headers).filter(([name]) => !['x-request-id', 'date'].includes(name)),
      );
      return { status: a.statusCode, headers, body: a.body.replaceAll(id, '<request id>') };
    };
    const expected = shape(answers.unknown);
    expect(expected.status).toBe(401);
    expect(JSON.parse(expected.body).error).toMatchObject({
      code: 'UNAUTHENTICATED',
      message: 'The email or password is not correct.',
    });
    expect(expected.headers['retry-after']).toBeUndefined();
    expect(expected.headers['set-cookie']).toBeUndefined();
    for (const [name, a] of Object.entries(answers)) {
      expect([name, Object.keys(a.headers).sort()]).toEqual([name, Object.keys(answers.unknown.headers).sort()]);
      expect([name, shape(a)]).toEqual([name, expected]);
    }
  });

  it('bad login bodies are a clear 400, never a 500', async () => {
    for (const body of [
      {},
      { email: 'a@b.c' },
      { email: 'a@b.c', password: 'x'.repeat(1025) },
      { email: 'a@b.c', password: 'p', extra: 1 },
      { email: 5, password: 'p' },
    ]) {
      const res = await login('admin', body);
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('VALIDATION_FAILED');
    }
    const form = await app.inject({
      method: 'POST',
      url: '/v1/admin/login',
      remoteAddress: nextIp(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'email=a&password=b',
    });
    expect(form.statusCode).toBe(415);
  });

  it('rehashes an older-cost password hash on successful login', async () => {
    const admin = await seedAdmin(db.pool, { params: { N: 2 ** 14, r: 8, p: 1 } });
    const before = (await db.pool.query('SELECT password_hash FROM admins WHERE id = $1', [admin.id])).rows[0]
      .password_hash as string;
    expect(before.startsWith('scrypt$16384$8$1$')).toBe(true);
    expect((await login('admin', { email: admin.email, password: TEST_PASSWORD })).statusCode).toBe(200);
    const after = (await db.pool.query('SELECT password_hash FROM admins WHERE id = $1', [admin.id])).rows[0]
      .password_hash as string;
    expect(after.startsWith('scrypt$32768$8$1$')).toBe(true);
    expect((await login('admin', { email: admin.email, password: TEST_PASSWORD })).statusCode).toBe(200);
  });

  it('an admin cookie is useless on the portal, and a portal cookie useless on the admin API', async () => {
    const admin = await seedAdmin(db.pool, { cheap: true });
    const customer = await seedCustomer(db.pool);
    const user = await seedCustomerUser(db.pool, customer.id, { cheap: true });
    const a = await mintSession(db.pool, 'admin', admin, clock);
    const p = await mintSession(db.pool, 'customer', user, clock);
    expect((await app.inject({ method: 'GET', url: '/v1/portal/me', headers: { cookie: p.cookie } })).statusCode).toBe(
      200,
    );
    expect((await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie: a.cookie } })).statusCode).toBe(
      200,
    );
    expect((await app.inject({ method: 'GET', url: '/v1/portal/me', headers: { cookie: a.cookie } })).statusCode).toBe(
      403,
    );
    expect((await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie: p.cookie } })).statusCode).toBe(
      403,
    );
    // The token itself under the other cookie name: looked up in the other table, it is nothing.
    expect(
      (await app.inject({ method: 'GET', url: '/v1/portal/me', headers: { cookie: `${PORTAL_COOKIE}=${a.token}` } }))
        .statusCode,
    ).toBe(401);
    expect(
      (await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie: `${ADMIN_COOKIE}=${p.token}` } }))
        .statusCode,
    ).toBe(401);
    // A browser holding both cookies: each side uses its own.
    const both = `${a.cookie}; ${p.cookie}`;
    expect((await app.inject({ method: 'GET', url: '/v1/portal/me', headers: { cookie: both } })).json().id).toBe(
      user.id,
    );
    expect((await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie: both } })).json().id).toBe(
      admin.id,
    );
  });

  it('sliding 8 h idle timeout, throttled last_seen writes, hard 30-day ceiling', async () => {
    const admin = await seedAdmin(db.pool, { cheap: true });
    const s = await mintSession(db.pool, 'admin', admin, clock);
    const me = () => app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie: s.cookie } });
    const lastSeen = async () =>
      (
        (await db.pool.query('SELECT last_seen_at FROM admin_sessions WHERE id = $1', [s.sessionId])).rows[0]
          ?.last_seen_at as Date | undefined
      )?.getTime();
    const created = await lastSeen();

    clock.advance(30_000);
    expect((await me()).statusCode).toBe(200);
    expect(await lastSeen()).toBe(created); // within a minute: a read stays a read
    clock.advance(31_000);
    expect((await me()).statusCode).toBe(200);
    expect(await lastSeen()).toBe(clock.now().getTime());

    // Keep it busy for 31 days, touching every 7 hours: the sliding window never lapses, the ceiling does.
    let refusedAfterMs = 0;
    for (let elapsed = 61_000; elapsed < 32 * 24 * 3600_000; elapsed += 7 * 3600_000) {
      clock.advance(7 * 3600_000);
      if ((await me()).statusCode !== 200) {
        refusedAfterMs = elapsed + 7 * 3600_000;
        break;
      }
    }
    expect(refusedAfterMs).toBeGreaterThanOrEqual(30 * 24 * 3600_000);
    expect(refusedAfterMs).toBeLessThan(30 * 24 * 3600_000 + 7 * 3600_000 + 61_000);
    expect(await lastSeen()).toBeUndefined(); // deleted on sight

    const idle = await mintSession(db.pool, 'admin', admin, clock);
    clock.advance(SESSION_IDLE_MS - 1000);
    expect(
      (await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie: idle.cookie } })).statusCode,
    ).toBe(200);
    clock.advance(SESSION_IDLE_MS);
    expect(
      (await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie: idle.cookie } })).statusCode,
    ).toBe(401);
  });

  it('logout deletes the session; the old cookie is refused afterwards', async () => {
    const admin = await seedAdmin(db.pool, { cheap: true });
    const s = await mintSession(db.pool, 'admin', admin, clock);
    const out = await app.inject({
      method: 'POST',
      url: '/v1/admin/logout',
      headers: { cookie: s.cookie, ...SAME_ORIGIN },
      payload: {},
    });
    expect(out.statusCode).toBe(200);
    expect(String(out.headers['set-cookie'])).toMatch(/Max-Age=0/);
    expect((await db.pool.query('SELECT 1 FROM admin_sessions WHERE id = $1', [s.sessionId])).rowCount).toBe(0);
    expect((await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie: s.cookie } })).statusCode).toBe(
      401,
    );
    const audit = await db.pool.query(
      "SELECT actor_kind, actor_id FROM audit_events WHERE action = 'session.deleted' AND subject_id = $1",
      [s.sessionId],
    );
    expect(audit.rows).toEqual([{ actor_kind: 'admin', actor_id: admin.id }]);
  });

  it('forged, malformed and oversized cookies are simply unauthenticated', async () => {
    for (const cookie of [
      `${ADMIN_COOKIE}=sess_${'A'.repeat(43)}`,
      `${ADMIN_COOKIE}=garbage`,
      `${ADMIN_COOKIE}=`,
      `${ADMIN_COOKIE}=${'x'.repeat(5000)}`,
      'x'.repeat(9000),
    ]) {
      const res = await app.inject({ method: 'GET', url: '/v1/admin/me', headers: { cookie } });
      expect(res.statusCode).toBe(401);
    }
  });

  it('CSRF: cookie-authenticated changes need JSON and same-origin; refusals are 403 and audited', async () => {
    const admin = await seedAdmin(db.pool, { cheap: true });
    const s = await mintSession(db.pool, 'admin', admin, clock);
    const post = (headers: Record<string, string>, payload?: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/admin/customers',
        headers: { cookie: s.cookie, ...headers },
        payload: payload ?? JSON.stringify({ name: 'Acme' }),
      });
    const refused = [
      await post({ 'content-type': 'text/plain', 'sec-fetch-site': 'same-origin' }),
      await post({ 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' }, 'name=Acme'),
      await post({ 'content-type': 'application/json', 'sec-fetch-site': 'cross-site' }),
      await post({ 'content-type': 'application/json', 'sec-fetch-site': 'same-site' }),
      await post({ 'content-type': 'application/json' }),
      await post({ 'content-type': 'application/json', origin: 'https://evil.example' }),
      await post({ 'content-type': 'application/json', origin: 'null' }),
    ];
    for (const r of refused) {
      expect(r.statusCode).toBe(403);
      expect(r.json().error.code).toBe('FORBIDDEN');
    }
    const audit = await db.pool.query(
      "SELECT actor_kind, actor_id, data->>'reason' AS reason FROM audit_events WHERE action = 'request.csrf_refused' AND subject_id = $1 ORDER BY seq",
      [s.sessionId],
    );
    expect(audit.rows.map((r) => r.reason)).toEqual([
      'content_type',
      'content_type',
      'sec_fetch_site',
      'sec_fetch_site',
      'origin_missing',
      'origin_not_allowed',
      'origin_not_allowed',
    ]);
    expect(audit.rows.every((r) => r.actor_kind === 'admin' && r.actor_id === admin.id)).toBe(true);
    expect((await db.pool.query("SELECT count(*)::int AS n FROM customers WHERE name = 'Acme'")).rows[0].n).toBe(0);

    expect((await post({ 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' })).statusCode).toBe(201);
    const origin = new URL(testConfig().publicOrigin).origin;
    expect((await post({ 'content-type': 'application/json; charset=utf-8', origin })).statusCode).toBe(201);
    // Reads are not state changes.
    expect(
      (
        await app.inject({
          method: 'GET',
          url: '/v1/admin/customers',
          headers: { cookie: s.cookie, 'sec-fetch-site': 'cross-site' },
        })
      ).statusCode,
    ).toBe(200);
  });

  it('portal login works for customer users; their customer being deactivated ends it', async () => {
    const customer = await seedCustomer(db.pool);
    const user = await seedCustomerUser(db.pool, customer.id);
    const res = await login('portal', { email: user.email, password: TEST_PASSWORD });
    expect(res.statusCode).toBe(200);
    expect(String(res.headers['set-cookie'])).toMatch(new RegExp(`^${PORTAL_COOKIE}=`));
    const cookie = cookieFrom(res.headers['set-cookie']);
    const me = await app.inject({ method: 'GET', url: '/v1/portal/me', headers: { cookie } });
    expect(me.json()).toMatchObject({ id: user.id, customerId: customer.id });
    expect((await login('admin', { email: user.email, password: TEST_PASSWORD })).statusCode).toBe(401);
    // The portal cookie is an ambient credential too: a cross-site logout is refused and audited.
    const forged = await app.inject({
      method: 'POST',
      url: '/v1/portal/logout',
      headers: { cookie, 'content-type': 'application/json', 'sec-fetch-site': 'cross-site' },
      payload: {},
    });
    expect(forged.statusCode).toBe(403);
    expect(
      (
        await db.pool.query(
          "SELECT actor_kind, actor_id FROM audit_events WHERE action = 'request.csrf_refused' ORDER BY seq DESC LIMIT 1",
        )
      ).rows[0],
    ).toEqual({ actor_kind: 'customer', actor_id: user.id });
    expect((await app.inject({ method: 'GET', url: '/v1/portal/me', headers: { cookie } })).statusCode).toBe(200);

    const admin = await seedAdmin(db.pool, { cheap: true });
    const a = await mintSession(db.pool, 'admin', admin, clock);
    const off = await app.inject({
      method: 'POST',
      url: `/v1/admin/customers/${customer.id}/deactivate`,
      headers: { cookie: a.cookie, ...SAME_ORIGIN },
      payload: {},
    });
    expect(off.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/portal/me', headers: { cookie } })).statusCode).toBe(401);
    expect((await login('portal', { email: user.email, password: TEST_PASSWORD })).statusCode).toBe(401);
  });
});
