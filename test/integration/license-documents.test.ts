import { loadPurposeKeySet, verifySignedLicense } from '../../protocol';
import { checkLicenseSignature } from '../../web/src/verify';
import type { PublicKeySets, SignedLicense } from '../../web/src/types';
import { buildTestApp, testConfig } from '../support/app';
import { createCustomer, createLicense } from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { mintSession, seedAdmin, seedCustomerUser, seedServiceAccount } from '../support/identity';
import { createTestKeysDir } from '../support/license-helpers';

/**
 * GET /.well-known/agentina-keys.json and the signed license document routes, through app.inject()
 * with the production authenticator; the browser's tweetnacl check (web/src/verify.ts) is run on
 * the same answers and must agree with protocol's node:crypto verifier.
 */
describe('public key sets and signed license documents', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let licenseA: string;
  let licenseB: string;
  const as: Record<string, Record<string, string>> = {};

  beforeAll(async () => {
    db = await createTestDatabase('licdocs');
    keys = createTestKeysDir();
    t = await buildTestApp({ pool: db.pool, config: testConfig({ AGENTINA_KEYS_DIR: keys.dir }) });
    const customerA = await createCustomer(db.pool);
    const customerB = await createCustomer(db.pool);
    licenseA = await createLicense(db.pool, customerA);
    licenseB = await createLicense(db.pool, customerB);
    as.anonymous = {};
    as.admin = { cookie: (await mintSession(db.pool, 'admin', await seedAdmin(db.pool, { cheap: true }))).cookie };
    as.customerA = {
      cookie: (await mintSession(db.pool, 'customer', await seedCustomerUser(db.pool, customerA, { cheap: true })))
        .cookie,
    };
    as.customerB = {
      cookie: (await mintSession(db.pool, 'customer', await seedCustomerUser(db.pool, customerB, { cheap: true })))
        .cookie,
    };
    as.service = { authorization: `Bearer ${(await seedServiceAccount(db.pool)).token}` };
  });

  afterAll(async () => {
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  const get = (who: string, url: string) => t.app.inject({ method: 'GET', url, headers: as[who] });

  it('publishes the public halves of the license, release and audit key sets, and nothing private', async () => {
    const res = await get('anonymous', '/.well-known/agentina-keys.json');
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    const body = res.json<PublicKeySets>();
    expect(Object.keys(body).sort()).toEqual(['audit', 'license', 'release']);
    for (const purpose of ['license', 'release', 'audit'] as const) {
      expect(body[purpose].keys).toHaveLength(1);
      expect(body[purpose].keys[0]).toMatchObject({
        kid: expect.stringMatching(new RegExp(`^${purpose}-`)),
        alg: 'Ed25519',
        publicKeyPem: expect.stringContaining('BEGIN PUBLIC KEY'),
      });
    }
    expect(res.body).not.toMatch(/PRIVATE/);
  });

  it('serves the signed document to admins, service accounts and the owning customer; both verifiers accept it', async () => {
    const keySets = (await get('anonymous', '/.well-known/agentina-keys.json')).json<PublicKeySets>();
    for (const [who, url] of [
      ['admin', `/v1/admin/licenses/${licenseA}/document`],
      ['service', `/v1/admin/licenses/${licenseA}/document`],
      ['customerA', `/v1/portal/licenses/${licenseA}/document`],
    ] as const) {
      const res = await get(who, url);
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      const signed = res.json<SignedLicense>();
      expect(signed.document).toMatchObject({ kind: 'agentina.license/v1', licenseId: licenseA, version: 1 });
      expect(verifySignedLicense(signed, loadPurposeKeySet(keys.dir, 'license')).ok).toBe(true);
      expect(checkLicenseSignature(signed, keySets)).toEqual({ ok: true, kid: signed.signature.kid });
    }
  });

  it('the browser check refuses a changed document, a foreign key and a malformed signature', async () => {
    const keySets = (await get('anonymous', '/.well-known/agentina-keys.json')).json<PublicKeySets>();
    const signed = (await get('admin', `/v1/admin/licenses/${licenseA}/document`)).json<SignedLicense>();
    const changed = { ...signed, document: { ...signed.document, maxAgents: 1000 } };
    expect(checkLicenseSignature(changed, keySets)).toMatchObject({
      ok: false,
      reason: 'the signature does not match the document',
    });
    expect(verifySignedLicense(changed, loadPurposeKeySet(keys.dir, 'license')).ok).toBe(false);
    // The release key must not vouch for a license.
    const releaseKid = keySets.release.keys[0]!.kid;
    expect(
      checkLicenseSignature({ ...signed, signature: { ...signed.signature, kid: releaseKid } }, keySets),
    ).toMatchObject({ ok: false });
    expect(
      checkLicenseSignature({ ...signed, signature: { ...signed.signature, sig: 'AAAA' } }, keySets),
    ).toMatchObject({ ok: false, reason: 'malformed signature' });
  });

  it('answers 503, not 500, when the server has no license signing key', async () => {
    const bare = await buildTestApp({
      pool: db.pool,
      config: testConfig({ AGENTINA_KEYS_DIR: `${keys.dir}/missing` }),
    });
    try {
      const res = await bare.app.inject({
        method: 'GET',
        url: `/v1/admin/licenses/${licenseA}/document`,
        headers: as.admin,
      });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({
        error: { code: 'UNAVAILABLE', message: expect.stringContaining('no license signing key') },
      });
      const keySets = await bare.app.inject({ method: 'GET', url: '/.well-known/agentina-keys.json' });
      expect(keySets.json()).toEqual({ license: { keys: [] }, release: { keys: [] }, audit: { keys: [] } });
    } finally {
      await bare.close();
    }
  });

  it.each([
    ['anonymous', `/v1/admin/licenses/{A}/document`, 401],
    ['customerA', `/v1/admin/licenses/{A}/document`, 403],
    ['admin', `/v1/portal/licenses/{A}/document`, 403],
    ['service', `/v1/portal/licenses/{A}/document`, 403],
    ['anonymous', `/v1/portal/licenses/{A}/document`, 401],
    ['customerB', `/v1/portal/licenses/{A}/document`, 404],
    ['customerA', `/v1/portal/licenses/{B}/document`, 404],
    ['admin', `/v1/admin/licenses/lic_doesnotexist000000000/document`, 404],
    ['admin', `/v1/admin/licenses/not-an-id/document`, 400],
    ['customerA', `/v1/portal/licenses/lic_${'x'.repeat(80)}/document`, 400],
  ])('%s GET %s → %i', async (who, path, status) => {
    const res = await get(who, path.replace('{A}', licenseA).replace('{B}', licenseB));
    expect(res.statusCode).toBe(status);
    expect(res.json()).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
  });
});
