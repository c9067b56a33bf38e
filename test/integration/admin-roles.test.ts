import type { App } from '../../api/app';
import { createFixedClock } from '../../protocol';
import { createIdentityService } from '../../services/identity/identity-service';
import { createPasswordHasher } from '../../services/identity/passwords';
import { buildTestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { asBearer, asCookie, mintSession, seedAdmin, uniqueEmail } from '../support/identity';

/**
 * Admin roles and scoped service tokens, from the side of an operator reaching for an owner's
 * powers, two owners demoting each other at once, and a script whose token is too narrow or too old.
 * (Every route × every role and scope is in authz-matrix.test.ts.)
 */
describe('identity: admin roles and scoped service tokens', () => {
  let db: TestDatabase;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let app: App;
  const clock = createFixedClock(new Date());

  beforeAll(async () => {
    db = await createTestDatabase('roles');
    t = await buildTestApp({ pool: db.pool, clock });
    app = t.app;
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const as = (cookie: string) => asCookie(app, cookie);
  const bearer = (token: string) => asBearer(app, token);
  const session = async (role: 'owner' | 'operator' | 'viewer') => {
    const admin = await seedAdmin(db.pool, { cheap: true, role });
    return { admin, cookie: (await mintSession(db.pool, 'admin', admin)).cookie };
  };
  /** Leaves exactly the given admins as active owners (other tests' owners become viewers). */
  const onlyOwners = async (...ids: string[]) =>
    db.adminPool.query("UPDATE admins SET role = 'viewer' WHERE role = 'owner' AND NOT (id = ANY($1))", [ids]);

  it('a new admin is a viewer unless the owner says otherwise; an operator cannot create or promote admins', async () => {
    const owner = await session('owner');
    const created = await as(owner.cookie).post('/v1/admin/admins', { email: uniqueEmail('new') });
    expect(created.statusCode).toBe(201);
    expect(created.json().admin).toMatchObject({ role: 'viewer', totpEnrolled: false });
    const op = await as(owner.cookie).post('/v1/admin/admins', { email: uniqueEmail('op'), role: 'operator' });
    expect(op.json().admin.role).toBe('operator');
    expect(
      (await as(owner.cookie).post('/v1/admin/admins', { email: uniqueEmail('x'), role: 'root' })).statusCode,
    ).toBe(400);

    // An operator reaching for an owner's powers: refused, naming what it lacks.
    const operator = await session('operator');
    const promote = await as(operator.cookie).post(`/v1/admin/admins/${operator.admin.id}/role`, { role: 'owner' });
    expect(promote.statusCode).toBe(403);
    expect(promote.json().error.message).toBe('Your role (operator) does not allow this: it needs admins:write.');
    expect(
      (await as(operator.cookie).post('/v1/admin/admins', { email: uniqueEmail('y'), role: 'owner' })).statusCode,
    ).toBe(403);
    expect(
      (await as(operator.cookie).post('/v1/admin/service-accounts', { name: 'mine', scopes: ['audit:read'] }))
        .statusCode,
    ).toBe(403);
  });

  it('a role change is audited and takes effect on live sessions at once', async () => {
    const owner = await session('owner');
    const target = await session('operator');
    expect((await as(target.cookie).post('/v1/admin/customers', { name: 'Before' })).statusCode).toBe(201);
    const changed = await as(owner.cookie).post(`/v1/admin/admins/${target.admin.id}/role`, { role: 'viewer' });
    expect(changed.statusCode).toBe(200);
    expect(changed.json().role).toBe('viewer');
    const refused = await as(target.cookie).post('/v1/admin/customers', { name: 'After' });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.message).toMatch(/viewer.*customers:write/);
    // Reads and the audit stay open to a viewer.
    expect((await as(target.cookie).get('/v1/admin/customers')).statusCode).toBe(200);
    expect((await as(target.cookie).get('/v1/admin/audit')).statusCode).toBe(200);
    const audit = await db.adminPool.query(
      "SELECT actor_id, data FROM audit_events WHERE action = 'admin.role_changed' AND subject_id = $1",
      [target.admin.id],
    );
    expect(audit.rows).toEqual([{ actor_id: owner.admin.id, data: { from: 'operator', to: 'viewer' } }]);
  });

  it('the last active owner cannot be demoted or deactivated, by anyone including themself', async () => {
    const owner = await session('owner');
    await onlyOwners(owner.admin.id);
    const demote = await as(owner.cookie).post(`/v1/admin/admins/${owner.admin.id}/role`, { role: 'operator' });
    expect(demote.statusCode).toBe(409);
    expect(demote.json().error.message).toMatch(/last active owner/);
    const second = await session('owner');
    await onlyOwners(owner.admin.id, second.admin.id);
    // With a second owner the first may step down; the second is then the last.
    expect(
      (await as(owner.cookie).post(`/v1/admin/admins/${owner.admin.id}/role`, { role: 'operator' })).statusCode,
    ).toBe(200);
    expect(
      (await as(second.cookie).post(`/v1/admin/admins/${second.admin.id}/role`, { role: 'viewer' })).statusCode,
    ).toBe(409);
    // Deactivation: only owners may, and not themselves, so the rule is checked in the service too.
    const accounts = createIdentityService({ pool: db.pool, clock, passwords: createPasswordHasher() });
    await expect(
      accounts.setAdminActive({ kind: 'service', id: 'svcacct_rolestest0000000' }, second.admin.id, false),
    ).rejects.toThrow(/last active owner cannot be deactivated/);
    expect((await as(second.cookie).post(`/v1/admin/admins/${second.admin.id}/deactivate`)).statusCode).toBe(409);
  });

  it('two owners demoting each other at once: exactly one succeeds, an owner remains', async () => {
    for (let round = 0; round < 5; round++) {
      const a = await session('owner');
      const b = await session('owner');
      await onlyOwners(a.admin.id, b.admin.id);
      const [ra, rb] = await Promise.all([
        as(a.cookie).post(`/v1/admin/admins/${b.admin.id}/role`, { role: 'viewer' }),
        as(b.cookie).post(`/v1/admin/admins/${a.admin.id}/role`, { role: 'viewer' }),
      ]);
      const statuses = [ra.statusCode, rb.statusCode].sort();
      // The loser is refused, either as no longer an owner (403) or as the last owner (409).
      expect(statuses[0]).toBe(200);
      expect([403, 409]).toContain(statuses[1]);
      const owners = await db.adminPool.query("SELECT id FROM admins WHERE role = 'owner' AND active");
      expect(owners.rows).toHaveLength(1);
    }
  });

  it('service tokens: explicit scopes and expiry, answered and audited; bad ones refused at creation', async () => {
    const owner = await session('owner');
    const bad = [
      { name: 'none', scopes: [] },
      { name: 'unknown', scopes: ['licenses:delete'] },
      { name: 'escalate', scopes: ['admins:write'] },
      { name: 'past', scopes: ['audit:read'], expiresAt: new Date(clock.now().getTime() - 1000).toISOString() },
      { name: 'noscopes' },
    ];
    for (const body of bad)
      expect((await as(owner.cookie).post('/v1/admin/service-accounts', body)).statusCode).toBe(400);

    const expiresAt = new Date(clock.now().getTime() + 3_600_000).toISOString();
    const created = await as(owner.cookie).post('/v1/admin/service-accounts', {
      name: 'monitoring',
      scopes: ['agents:read', 'tasks:read', 'agents:read'],
      expiresAt,
    });
    expect(created.statusCode).toBe(201);
    const { serviceAccount, token } = created.json<{ serviceAccount: { id: string }; token: string }>();
    expect(serviceAccount).toMatchObject({ scopes: ['agents:read', 'tasks:read'], expiresAt });
    const audit = await db.adminPool.query(
      "SELECT data FROM audit_events WHERE action = 'service_account.created' AND subject_id = $1",
      [serviceAccount.id],
    );
    expect(audit.rows[0].data).toEqual({ name: 'monitoring', scopes: ['agents:read', 'tasks:read'], expiresAt });

    // It can read agents and tasks (which no token could before), and nothing else.
    const bot = bearer(token);
    expect((await bot.get('/v1/admin/agents')).statusCode).toBe(200);
    expect((await bot.get('/v1/admin/tasks')).statusCode).toBe(200);
    const write = await bot.post('/v1/admin/tasks', { agentId: 'agt_nosuchagent000000000', kind: 'echo', payload: {} });
    expect(write.statusCode).toBe(403);
    expect(write.json().error).toMatchObject({
      code: 'FORBIDDEN',
      message: 'This token lacks the scope tasks:write.',
      details: [{ path: 'scope', message: 'tasks:write' }],
    });
    expect((await bot.get('/v1/admin/licenses')).json().error.message).toBe(
      'This token lacks the scope licenses:read.',
    );
    expect((await bot.get('/v1/admin/admins')).statusCode).toBe(403);

    // Past its expiry it is refused like an unknown token.
    clock.advance(3_600_000);
    const expired = await bot.get('/v1/admin/agents');
    expect(expired.statusCode).toBe(401);
    expect(expired.json().error.message).toBe(
      (await bearer(`svc_${'A'.repeat(43)}`).get('/v1/admin/agents')).json().error.message,
    );
  });
});
