import type { InjectOptions } from 'fastify';
import {
  createFixedClock,
  createSigner,
  generateKeyFile,
  loadPurposeKeySet,
  loadPurposeSigner,
  verifySignature,
  type ReleaseManifest,
  type Signer,
} from '../../protocol';
import { buildTestApp, testConfig } from '../support/app';
import {
  asAgent,
  createAgentWithLicense,
  createStaff,
  RELEASE_FILES,
  signManifest,
  type Staff,
  withJsonBody,
} from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestKeysDir } from '../support/license-helpers';

describe('agent releases: signed manifests registered by admins, the newest served to agents', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let keysDir: string;
  let built: Awaited<ReturnType<typeof buildTestApp>>;
  let staff: Staff;
  const clock = createFixedClock(new Date('2026-11-26T12:00:00.000Z'));
  const inject = (opts: InjectOptions) => built.app.inject(withJsonBody(opts));

  beforeAll(async () => {
    db = await createTestDatabase('releases');
    staff = createStaff(db.pool, clock);
    keys = createTestKeysDir();
    keysDir = keys.dir;
    built = await buildTestApp({ pool: db.pool, clock, config: testConfig({ AGENTINA_KEYS_DIR: keysDir }) });
  });

  afterAll(async () => {
    await built?.close();
    await db?.drop();
    keys?.remove();
  });

  it('registers a signed manifest once, answers an identical re-post, and refuses a different one for the same version', async () => {
    const signer = loadPurposeSigner(keysDir, 'release');
    const m = signManifest(signer, '1.1.0');
    const first = await inject({ method: 'POST', url: '/v1/admin/releases', headers: await staff.admin(), payload: m });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({
      version: '1.1.0',
      runtimeHash: m.manifest.runtimeHash,
      keyId: signer.kid,
      fileCount: 2,
    });
    expect(
      (await inject({ method: 'POST', url: '/v1/admin/releases', headers: await staff.admin(), payload: m }))
        .statusCode,
    ).toBe(200);
    const other = signManifest(signer, '1.1.0', [{ path: 'agent/index.js', sha256: '9'.repeat(64), size: 1 }]);
    expect(
      (await inject({ method: 'POST', url: '/v1/admin/releases', headers: await staff.admin(), payload: other }))
        .statusCode,
    ).toBe(409);
    const audit = await db.adminPool.query(
      `SELECT count(*) FROM agentina.audit_events WHERE action = 'release.published' AND data->>'version' = '1.1.0'`,
    );
    expect(Number(audit.rows[0].count)).toBe(1);
  });

  it.each([
    [
      'a bad signature',
      (s: Signer) => ({ ...signManifest(s, '2.0.0'), signature: { ...signManifest(s, '2.0.1').signature } }),
      'BAD_SIGNATURE',
    ],
    [
      'a key outside the release key set',
      () => signManifest(createSigner(generateKeyFile('release-rogue')), '2.0.0'),
      'UNKNOWN_KEY',
    ],
    [
      'the license key instead of the release key',
      () => signManifest(loadPurposeSigner(keysDir, 'license'), '2.0.0'),
      'UNKNOWN_KEY',
    ],
    [
      'a runtimeHash that is not the hash of its files',
      (s: Signer) => {
        const manifest: ReleaseManifest = {
          kind: 'agentina.release/v1',
          version: '2.0.0',
          files: RELEASE_FILES,
          runtimeHash: 'e'.repeat(64),
          createdAt: '2026-11-01T00:00:00.000Z',
        };
        return { manifest, signature: s.sign(manifest) };
      },
      'RUNTIME_HASH',
    ],
    [
      'a path escaping the prefix',
      (s: Signer) => signManifest(s, '2.0.0', [{ path: '../etc/passwd', sha256: 'a'.repeat(64), size: 1 }]),
      'BAD_FILES',
    ],
  ])('refuses a manifest with %s (422) and stores nothing', async (_label, make, code) => {
    const res = await inject({
      method: 'POST',
      url: '/v1/admin/releases',
      headers: await staff.admin(),
      payload: make(loadPurposeSigner(keysDir, 'release')),
    });
    expect(res.statusCode).toBe(422);
    expect(res.json().error).toMatchObject({ code: 'UNPROCESSABLE', details: [{ path: 'body', message: code }] });
    expect(
      (await db.adminPool.query(`SELECT count(*) FROM agentina.releases WHERE version = '2.0.0'`)).rows[0].count,
    ).toBe('0');
  });

  it('only admins (and service accounts) register; agents and customers cannot', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const m = signManifest(loadPurposeSigner(keysDir, 'release'), '3.0.0');
    expect(
      (await inject({ method: 'POST', url: '/v1/admin/releases', headers: asAgent(a), payload: m })).statusCode,
    ).toBe(403);
    expect(
      (
        await inject({
          method: 'POST',
          url: '/v1/admin/releases',
          headers: await staff.customer(a.customerId),
          payload: m,
        })
      ).statusCode,
    ).toBe(403);
    expect((await inject({ method: 'POST', url: '/v1/admin/releases', payload: m })).statusCode).toBe(401);
    expect(
      (await inject({ method: 'GET', url: '/v1/agent/releases/latest', headers: await staff.admin() })).statusCode,
    ).toBe(403);
  });

  it('serves the highest version to agents, verifiable with the release key; an older registration never lowers it', async () => {
    const a = await createAgentWithLicense(db.pool, clock.now());
    const signer = loadPurposeSigner(keysDir, 'release');
    for (const v of ['1.10.0', '1.10.0-rc.1', '1.2.0']) {
      expect(
        (
          await inject({
            method: 'POST',
            url: '/v1/admin/releases',
            headers: await staff.admin(),
            payload: signManifest(signer, v),
          })
        ).statusCode,
      ).toBe(201);
    }
    const latest = await inject({ method: 'GET', url: '/v1/agent/releases/latest', headers: asAgent(a) });
    expect(latest.statusCode).toBe(200);
    const body = latest.json();
    expect(body.manifest.version).toBe('1.10.0');
    expect(verifySignature(body.manifest, body.signature, loadPurposeKeySet(keysDir, 'release'))).toEqual({ ok: true });
    const list = await inject({ method: 'GET', url: '/v1/admin/releases', headers: await staff.admin() });
    expect(
      list
        .json()
        .items.map((r: { version: string }) => r.version)
        .slice(0, 3),
    ).toEqual(['1.10.0', '1.10.0-rc.1', '1.2.0']);
  });

  it('POST /v1/admin/releases/:version/yank withdraws a version once, audited; unknown, repeated or malformed is a clear 4xx', async () => {
    const signer = loadPurposeSigner(keysDir, 'release');
    const m = signManifest(signer, '3.1.0');
    const admin = await staff.admin();
    expect((await inject({ method: 'POST', url: '/v1/admin/releases', headers: admin, payload: m })).statusCode).toBe(
      201,
    );
    const yank = (version: string, payload: object = {}) =>
      inject({ method: 'POST', url: `/v1/admin/releases/${version}/yank`, headers: admin, payload });
    const res = await yank('3.1.0', { reason: 'bad build' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ version: '3.1.0', yankedAt: clock.now().toISOString() });
    const again = await yank('3.1.0');
    expect(again.statusCode).toBe(409);
    expect(again.json().error.message).toMatch(/already yanked/);
    expect((await yank('9.8.7')).statusCode).toBe(404);
    expect((await yank('latest')).statusCode).toBe(400);
    expect((await yank('3.1.0', { reason: 'x'.repeat(501) })).statusCode).toBe(400);
    const audit = await db.pool.query(
      `SELECT actor_kind, data FROM audit_events WHERE action = 'release.yanked' AND data->>'version' = '3.1.0'`,
    );
    expect(audit.rows).toEqual([{ actor_kind: 'admin', data: { version: '3.1.0', reason: 'bad build' } }]);
  });
});
