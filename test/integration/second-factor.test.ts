import type { App } from '../../api/app';
import { createFixedClock } from '../../protocol';
import { buildTestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { asCookie, TEST_PASSWORD, cookieFrom, mintSession, nextIp, seedAdmin } from '../support/identity';
import { seedCustomer, seedCustomerUser } from '../support/identity';
import { pyotpCode, pyotpVerifies } from '../support/pyotp';
import { URI } from 'otpauth';

/**
 * TOTP second factor for admins, as an attacker would try it: a stolen password without the
 * code, a guessed code, a code seen over a shoulder replayed in its window, a spent recovery
 * code; and interoperability with pyotp, the reference implementation, both ways. Portal users
 * have the same factor (under /v1/portal/me/totp); another customer's user cannot reach it.
 */
describe('identity: TOTP second factor', () => {
  let db: TestDatabase;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let app: App;
  // A fixed clock, 10 s into a 30 s step, so codes are for the step we choose.
  const clock = createFixedClock(new Date(Math.floor(Date.now() / 30_000) * 30_000 + 10_000));

  beforeAll(async () => {
    db = await createTestDatabase('totp');
    t = await buildTestApp({ pool: db.pool, clock });
    app = t.app;
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const as = (cookie: string) => asCookie(app, cookie);
  const login = (email: string, password: string, code?: string, ip = nextIp()) =>
    app.inject({
      method: 'POST',
      url: '/v1/admin/login',
      remoteAddress: ip,
      headers: { 'content-type': 'application/json' },
      payload: { email, password, ...(code !== undefined ? { code } : {}) },
    });
  const audits = async (action: string, subjectId: string) =>
    (
      await db.adminPool.query<{ actor_kind: string; data: Record<string, unknown> }>(
        'SELECT actor_kind, data FROM audit_events WHERE action = $1 AND subject_id = $2 ORDER BY seq',
        [action, subjectId],
      )
    ).rows;

  /** An admin who enrolled with a code pyotp computed from our URI; answers the URI and recovery codes. */
  async function enrolled(role: 'owner' | 'operator' | 'viewer' = 'owner') {
    const admin = await seedAdmin(db.pool, { role });
    const { cookie } = await mintSession(db.pool, 'admin', admin);
    const begun = await as(cookie).post('/v1/admin/me/totp');
    expect(begun.statusCode).toBe(201);
    const { otpauthUri, secret } = begun.json<{ otpauthUri: string; secret: string }>();
    const confirmed = await as(cookie).post('/v1/admin/me/totp/confirm', {
      code: await pyotpCode(otpauthUri, clock.now()),
    });
    expect(confirmed.statusCode).toBe(200);
    clock.advance(30_000); // the confirming code's step is spent
    return {
      admin,
      cookie,
      otpauthUri,
      secret,
      recoveryCodes: confirmed.json<{ recoveryCodes: string[] }>().recoveryCodes,
    };
  }

  it('enrolment: the secret is shown once (otpauth URI and QR code), stored sealed, confirmed by a first code', async () => {
    const admin = await seedAdmin(db.pool);
    const { cookie } = await mintSession(db.pool, 'admin', admin);
    const begun = await as(cookie).post('/v1/admin/me/totp');
    expect(begun.statusCode).toBe(201);
    expect(begun.headers['cache-control']).toBe('no-store');
    const { otpauthUri, secret, qrCode } = begun.json<{ otpauthUri: string; secret: string; qrCode: string }>();
    expect(otpauthUri).toMatch(/^otpauth:\/\/totp\/Agentina:/);
    expect(otpauthUri).toContain(`secret=${secret}`);
    expect(qrCode).toMatch(/^data:image\/gif;base64,/);
    const stored = (
      await db.adminPool.query<{ sealed_secret: string; confirmed_at: Date | null }>(
        'SELECT * FROM second_factors WHERE account_id = $1',
        [admin.id],
      )
    ).rows[0]!;
    expect(stored.sealed_secret).toMatch(/^agentina-sealed:v1:/);
    expect(stored.sealed_secret).not.toContain(secret);
    expect(stored.confirmed_at).toBeNull();

    // Not enrolled until confirmed: the password alone still signs in.
    expect((await login(admin.email, TEST_PASSWORD)).statusCode).toBe(200);
    // A wrong first code is refused; pyotp's code from our URI is accepted.
    const wrong = await as(cookie).post('/v1/admin/me/totp/confirm', { code: '000000' });
    expect(wrong.statusCode).toBe(400);
    const confirmed = await as(cookie).post('/v1/admin/me/totp/confirm', {
      code: await pyotpCode(otpauthUri, clock.now()),
    });
    expect(confirmed.statusCode).toBe(200);
    const { recoveryCodes } = confirmed.json<{ recoveryCodes: string[] }>();
    expect(recoveryCodes).toHaveLength(10);
    expect(new Set(recoveryCodes).size).toBe(10);
    const hashes = await db.adminPool.query<{ code_hash: string }>(
      'SELECT code_hash FROM recovery_codes WHERE account_id = $1',
      [admin.id],
    );
    expect(hashes.rows).toHaveLength(10);
    for (const c of recoveryCodes) expect(JSON.stringify(hashes.rows)).not.toContain(c.replace('-', ''));
    expect((await as(cookie).get('/v1/admin/me')).json()).toMatchObject({ totpEnrolled: true });
    // No second secret while one is enrolled, and the status never shows it again.
    expect((await as(cookie).post('/v1/admin/me/totp')).statusCode).toBe(409);
    const status = await as(cookie).get('/v1/admin/me/totp');
    expect(status.json()).toEqual({ enrolled: true, recoveryCodesLeft: 10 });

    // The secret reached no log line and no audit row; the enrolment is audited.
    expect(t.logs.text()).not.toContain(secret);
    const ledger = await db.adminPool.query('SELECT * FROM audit_events');
    expect(JSON.stringify(ledger.rows)).not.toContain(secret);
    for (const c of recoveryCodes) expect(JSON.stringify(ledger.rows)).not.toContain(c);
    expect(await audits('admin.totp_enrolled', admin.id)).toEqual([
      { actor_kind: 'admin', data: { recoveryCodes: 10 } },
    ]);
  });

  it('our codes verify in pyotp, and the RFC 6238 test vector holds', async () => {
    const { otpauthUri } = await enrolled();
    // What an authenticator app would show for our URI, computed by our library.
    const ours = URI.parse(otpauthUri);
    for (const offset of [0, 30_000, 3_600_000]) {
      const at = new Date(clock.now().getTime() + offset);
      const code = ours.generate({ timestamp: at.getTime() });
      expect(await pyotpVerifies(otpauthUri, code, at)).toBe(true);
      expect(await pyotpVerifies(otpauthUri, code, new Date(at.getTime() + 60_000))).toBe(false);
    }
    // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (the last six digits at 6 digits).
    const rfc =
      'otpauth://totp/Agentina:rfc?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Agentina&algorithm=SHA1&digits=6&period=30';
    expect(URI.parse(rfc).generate({ timestamp: 59_000 })).toBe('287082');
    expect(await pyotpCode(rfc, new Date(59_000))).toBe('287082');
  });

  it('login: a stolen password without the code, a guessed code and a replayed code are refused; pyotp’s code signs in', async () => {
    const { admin, otpauthUri } = await enrolled();

    // The password alone: the one "send the code" answer, counted as a failure.
    const bare = await login(admin.email, TEST_PASSWORD);
    expect(bare.statusCode).toBe(401);
    expect(bare.json().error.details).toEqual([{ path: 'body.code', message: 'required' }]);
    expect(bare.headers['set-cookie']).toBeUndefined();
    // A guessed code: the one refusal every wrong sign-in gets.
    const guessed = await login(admin.email, TEST_PASSWORD, '123456');
    expect(guessed.statusCode).toBe(401);
    expect(guessed.json().error.message).toBe('The email or password is not correct.');
    // A wrong password with a code gets the same refusal as an unknown email: no oracle.
    const wrongPassword = await login(admin.email, 'not the password', '123456');
    const unknown = await login('nobody-here@example.test', TEST_PASSWORD, '123456');
    expect(wrongPassword.json().error.message).toBe(unknown.json().error.message);
    expect(wrongPassword.statusCode).toBe(unknown.statusCode);
    expect(wrongPassword.json().error.details).toBeUndefined();
    expect(unknown.json().error.details).toBeUndefined();

    const failures = await audits('login.failed', admin.id);
    expect(failures.map((f) => f.data.reason)).toEqual([
      'second_factor_missing',
      'wrong_second_factor',
      'wrong_password',
    ]);

    const code = await pyotpCode(otpauthUri, clock.now());
    const ok = await login(admin.email, TEST_PASSWORD, code);
    expect(ok.statusCode).toBe(200);
    // The same code again, within its window (seen over a shoulder): refused.
    const replay = await login(admin.email, TEST_PASSWORD, code);
    expect(replay.statusCode).toBe(401);
    // An earlier step's code is refused too once a later one was used.
    clock.advance(30_000);
    const next = await pyotpCode(otpauthUri, clock.now());
    const previous = await pyotpCode(otpauthUri, new Date(clock.now().getTime() - 30_000));
    expect(previous).toBe(code);
    expect((await login(admin.email, TEST_PASSWORD, next)).statusCode).toBe(200);
    const created = await db.adminPool.query<{ data: { secondFactor?: string } }>(
      "SELECT data FROM audit_events WHERE action = 'session.created' AND actor_id = $1 ORDER BY seq",
      [admin.id],
    );
    expect(created.rows.map((r) => r.data.secondFactor)).toEqual(['totp', 'totp']);
    expect(t.logs.text()).not.toContain(code);
  });

  it('a recovery code signs in once and is audited; spent, it is refused', async () => {
    const { admin, recoveryCodes } = await enrolled();
    const [first] = recoveryCodes;
    const ok = await login(admin.email, TEST_PASSWORD, first!.toUpperCase());
    expect(ok.statusCode).toBe(200);
    const cookie = cookieFrom(ok.headers['set-cookie']);
    expect((await as(cookie).get('/v1/admin/me/totp')).json()).toEqual({ enrolled: true, recoveryCodesLeft: 9 });
    expect(await audits('admin.recovery_code_used', admin.id)).toEqual([{ actor_kind: 'admin', data: { left: 9 } }]);
    expect((await login(admin.email, TEST_PASSWORD, first)).statusCode).toBe(401);
    // Another account's recovery code is nothing here.
    const other = await enrolled();
    expect((await login(admin.email, TEST_PASSWORD, other.recoveryCodes[0])).statusCode).toBe(401);
  });

  it('missing and wrong codes count toward the same lockout as wrong passwords', async () => {
    const { admin, otpauthUri } = await enrolled();
    // Five failures within the window, each from its own address (one address may spend only four).
    for (let i = 0; i < 5; i++) await login(admin.email, TEST_PASSWORD, i % 2 ? undefined : '000000');
    const locked = await db.adminPool.query<{ locked_until: Date | null }>(
      'SELECT locked_until FROM admins WHERE id = $1',
      [admin.id],
    );
    expect(locked.rows[0]!.locked_until).not.toBeNull();
    expect(await audits('account.locked', admin.id)).toHaveLength(1);
    // Locked: even the right password and code get the one refusal, without the "send the code" hint.
    const refused = await login(admin.email, TEST_PASSWORD, await pyotpCode(otpauthUri, clock.now()));
    expect(refused.statusCode).toBe(401);
    expect(refused.json().error.details).toBeUndefined();
    const bare = await login(admin.email, TEST_PASSWORD);
    expect(bare.json().error.details).toBeUndefined();
  });

  it('an owner can require a second factor per role: such an admin without one can only enrol; resets are audited', async () => {
    const owner = await seedAdmin(db.pool);
    const { cookie: ownerCookie } = await mintSession(db.pool, 'admin', owner);
    const operator = await seedAdmin(db.pool, { role: 'operator' });
    const { cookie } = await mintSession(db.pool, 'admin', operator);
    expect((await as(cookie).get('/v1/admin/licenses')).statusCode).toBe(200);

    // An operator cannot change the policy; an owner can.
    expect(
      (await as(cookie).post('/v1/admin/totp-policy', { owner: false, operator: false, viewer: false })).statusCode,
    ).toBe(403);
    const set = await as(ownerCookie).post('/v1/admin/totp-policy', { owner: false, operator: true, viewer: false });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toEqual({ owner: false, operator: true, viewer: false });

    // The operator's live session can now only enrol.
    const blocked = await as(cookie).get('/v1/admin/licenses');
    expect(blocked.statusCode).toBe(403);
    expect(blocked.json().error.message).toMatch(/requires a second factor/);
    expect((await as(cookie).get('/v1/admin/me')).json()).toMatchObject({ totpRequired: true, totpEnrolled: false });
    const begun = await as(cookie).post('/v1/admin/me/totp');
    expect(begun.statusCode).toBe(201);
    const { otpauthUri } = begun.json<{ otpauthUri: string }>();
    expect(
      (await as(cookie).post('/v1/admin/me/totp/confirm', { code: await pyotpCode(otpauthUri, clock.now()) }))
        .statusCode,
    ).toBe(200);
    expect((await as(cookie).get('/v1/admin/licenses')).statusCode).toBe(200);

    // A lost device: an owner resets the factor (audited); the operator must enrol again.
    const reset = await as(ownerCookie).post(`/v1/admin/admins/${operator.id}/totp/reset`);
    expect(reset.json()).toEqual({ reset: true });
    expect(await audits('admin.totp_reset', operator.id)).toEqual([{ actor_kind: 'admin', data: {} }]);
    expect((await as(cookie).get('/v1/admin/licenses')).statusCode).toBe(403);
    // An operator cannot reset anyone's factor.
    expect((await as(cookie).post(`/v1/admin/admins/${owner.id}/totp/reset`)).statusCode).toBe(403);
    const policyAudit = await db.adminPool.query(
      "SELECT data FROM audit_events WHERE action = 'admin.totp_policy_changed' ORDER BY seq DESC LIMIT 1",
    );
    expect(policyAudit.rows[0].data).toEqual({ required: { owner: false, operator: true, viewer: false } });
    await as(ownerCookie).post('/v1/admin/totp-policy', { owner: false, operator: false, viewer: false });
  });

  it('a sealed secret copied onto another admin does not open', async () => {
    const { admin } = await enrolled();
    const victim = await seedAdmin(db.pool);
    await db.adminPool.query(
      `INSERT INTO second_factors (account_kind, account_id, sealed_secret, confirmed_at, created_at)
       SELECT 'admin', $2, sealed_secret, now(), now() FROM second_factors WHERE account_id = $1`,
      [admin.id, victim.id],
    );
    const res = await login(victim.email, TEST_PASSWORD, '123456');
    expect(res.statusCode).toBe(503);
    expect(res.body).not.toContain('agentina-sealed');
  });

  // Portal users: the same service and routes as admins', under /v1/portal/me/totp.
  const portalLogin = (email: string, code?: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/portal/login',
      remoteAddress: nextIp(),
      headers: { 'content-type': 'application/json' },
      payload: { email, password: TEST_PASSWORD, ...(code !== undefined ? { code } : {}) },
    });

  async function portalUser(name: string) {
    const customer = await seedCustomer(db.pool, name);
    const user = await seedCustomerUser(db.pool, customer.id);
    const { cookie } = await mintSession(db.pool, 'customer', user);
    return { user, cookie };
  }

  it('portal: a portal user enrols with a pyotp code, then must sign in with a code; a replayed code is refused', async () => {
    const { user, cookie } = await portalUser('Acme');
    expect((await as(cookie).get('/v1/portal/me/totp')).json()).toEqual({ enrolled: false, recoveryCodesLeft: 0 });
    const begun = await as(cookie).post('/v1/portal/me/totp');
    expect(begun.statusCode).toBe(201);
    expect(begun.headers['cache-control']).toBe('no-store');
    const { otpauthUri, secret, qrCode } = begun.json<{ otpauthUri: string; secret: string; qrCode: string }>();
    expect(otpauthUri).toMatch(/^otpauth:\/\/totp\/Agentina:/);
    expect(decodeURIComponent(otpauthUri)).toContain(user.email);
    expect(qrCode).toMatch(/^data:image\/gif;base64,/);
    // Not enrolled until confirmed; a wrong first code is refused.
    expect((await portalLogin(user.email)).statusCode).toBe(200);
    expect((await as(cookie).post('/v1/portal/me/totp/confirm', { code: '000000' })).statusCode).toBe(400);
    const confirmed = await as(cookie).post('/v1/portal/me/totp/confirm', {
      code: await pyotpCode(otpauthUri, clock.now()),
    });
    expect(confirmed.statusCode).toBe(200);
    const { recoveryCodes } = confirmed.json<{ recoveryCodes: string[] }>();
    expect(recoveryCodes).toHaveLength(10);
    expect((await as(cookie).get('/v1/portal/me/totp')).json()).toEqual({ enrolled: true, recoveryCodesLeft: 10 });
    // No second secret while one is enrolled.
    expect((await as(cookie).post('/v1/portal/me/totp')).statusCode).toBe(409);

    // The stolen password alone no longer signs in; nor does a guessed code.
    clock.advance(30_000);
    expect((await portalLogin(user.email)).statusCode).toBe(401);
    expect((await portalLogin(user.email, '123456')).statusCode).toBe(401);
    const code = await pyotpCode(otpauthUri, clock.now());
    expect((await portalLogin(user.email, code)).statusCode).toBe(200);
    // The same code, seen over a shoulder and replayed in its window, is refused.
    expect((await portalLogin(user.email, code)).statusCode).toBe(401);

    // A recovery code works once.
    expect((await portalLogin(user.email, recoveryCodes[0])).statusCode).toBe(200);
    expect((await portalLogin(user.email, recoveryCodes[0])).statusCode).toBe(401);
    expect((await as(cookie).get('/v1/portal/me/totp')).json()).toEqual({ enrolled: true, recoveryCodesLeft: 9 });

    // Audited as the customer's user; the secret and the codes reached no log and no audit row.
    expect(await audits('customer_user.totp_enrolled', user.id)).toEqual([
      { actor_kind: 'customer', data: { recoveryCodes: 10 } },
    ]);
    expect(await audits('customer_user.recovery_code_used', user.id)).toEqual([
      { actor_kind: 'customer', data: { left: 9 } },
    ]);
    const ledger = JSON.stringify((await db.adminPool.query('SELECT * FROM audit_events')).rows);
    expect(ledger).not.toContain(secret);
    expect(t.logs.text()).not.toContain(secret);
    for (const c of recoveryCodes) expect(ledger).not.toContain(c);
  });

  it("portal: another customer's user cannot confirm, read or spend a user's factor", async () => {
    const victim = await portalUser('Victim');
    const attacker = await portalUser('Attacker');
    const begun = (await as(victim.cookie).post('/v1/portal/me/totp')).json<{ otpauthUri: string }>();
    // The attacker, holding a valid code of the victim's secret, can only reach their own account:
    // there is no id to name, and their own (unstarted) enrolment is what the code is checked against.
    const victimsCode = await pyotpCode(begun.otpauthUri, clock.now());
    const hijack = await as(attacker.cookie).post('/v1/portal/me/totp/confirm', { code: victimsCode });
    expect(hijack.statusCode).toBe(409);
    expect((await as(attacker.cookie).get('/v1/portal/me/totp')).json()).toEqual({
      enrolled: false,
      recoveryCodesLeft: 0,
    });
    // A portal session is no admin session: the admin routes refuse it (forbidden, never reached).
    expect((await as(attacker.cookie).get('/v1/admin/me/totp')).statusCode).toBe(403);
    expect((await as(attacker.cookie).post(`/v1/admin/admins/${victim.user.id}/totp/reset`)).statusCode).toBe(403);
    // The victim's enrolment is still theirs to confirm.
    const confirmed = await as(victim.cookie).post('/v1/portal/me/totp/confirm', { code: victimsCode });
    expect(confirmed.statusCode).toBe(200);
    clock.advance(30_000);
    // The attacker's recovery-code guess at sign-in spends nothing of the victim's.
    const { recoveryCodes } = confirmed.json<{ recoveryCodes: string[] }>();
    expect((await portalLogin(attacker.user.email, recoveryCodes[0])).statusCode).toBe(200);
    expect((await as(victim.cookie).get('/v1/portal/me/totp')).json()).toEqual({
      enrolled: true,
      recoveryCodesLeft: 10,
    });
  });
});
