import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { App } from '../../api/app';
import { buildTestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { nextIp, uniqueEmail } from '../support/identity';

/** `agentina create-admin`: a one-time password, or one line of stdin; audited as admin.created. */
describe('identity: agentina create-admin', () => {
  let db: TestDatabase;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let app: App;
  const bin = path.resolve(__dirname, '../../bin/agentina.js');

  beforeAll(async () => {
    db = await createTestDatabase('identcli');
    t = await buildTestApp({ pool: db.pool });
    app = t.app;
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const cli = (args: string[], input?: string) =>
    spawnSync(process.execPath, [bin, 'create-admin', ...args], {
      input: input ?? '',
      encoding: 'utf8',
      env: { PATH: process.env.PATH, DATABASE_URL: db.adminUrl, LOG_LEVEL: 'silent' },
      timeout: 60_000,
    });
  const login = (email: string, password: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/admin/login',
      remoteAddress: nextIp(),
      headers: { 'content-type': 'application/json' },
      payload: { email, password },
    });

  it('prints a one-time password; the new admin must change it', async () => {
    const email = uniqueEmail('cli');
    const r = cli(['--email', email]);
    expect(r.status).toBe(0);
    const otp = /one-time password: (\S+)/.exec(r.stdout)?.[1];
    expect(otp).toMatch(/^[A-Za-z0-9]{20}$/);
    const res = await login(email, otp!);
    expect(res.statusCode).toBe(200);
    expect(res.json().account.mustChangePassword).toBe(true);
    const audit = await db.pool.query(
      "SELECT actor_kind, actor_id, data FROM audit_events WHERE action = 'admin.created' AND subject_id = $1",
      [res.json().account.id],
    );
    expect(audit.rows).toEqual([
      { actor_kind: 'system', actor_id: 'cli', data: { email, role: 'owner', oneTimePassword: true, via: 'cli' } },
    ]);
    expect(JSON.stringify(audit.rows)).not.toContain(otp);
  });

  it('--password-stdin reads exactly one line; a weak one is refused with a clear message', async () => {
    const email = uniqueEmail('cli');
    const r = cli(['--email', email, '--password-stdin'], 'a sturdy scripted password\nignored second line\n');
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(/one-time password/);
    expect((await login(email, 'a sturdy scripted password')).statusCode).toBe(200);
    expect((await login(email, 'a sturdy scripted password\nignored second line')).statusCode).toBe(401);

    const weak = cli(['--email', uniqueEmail('cli'), '--password-stdin'], 'short\n');
    expect(weak.status).toBe(1);
    expect(weak.stderr).toMatch(/too short/);
    const dup = cli(['--email', email.toUpperCase()]);
    expect(dup.status).toBe(1);
  });
});
