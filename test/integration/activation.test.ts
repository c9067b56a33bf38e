import { createHash } from 'node:crypto';
import { buildTestApp, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import {
  activateBody,
  createTestKeys,
  insertCustomer,
  insertLicense,
  testAuthenticate,
  transitionLicenseByHand,
} from '../support/activation-fixtures';
import {
  activateResponseSchema,
  fingerprintCommitment,
  verifySignature,
  verifySignedLicense,
  type KeySet,
} from '../../protocol';
import type { App } from '../../api/app';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
let ipCounter = 1;
/** A fresh client address per activation keeps the per-IP limit out of tests that are not about it. */
const nextIp = () => `10.1.${Math.floor(ipCounter / 250)}.${(ipCounter++ % 250) + 1}`;

describe('activation tokens and POST /v1/agent/activate', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeys>;
  let keySet: KeySet;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let app: App;

  beforeAll(async () => {
    db = await createTestDatabase('activation');
    keys = createTestKeys();
    keySet = keys.keySet;
    t = await buildTestApp({
      pool: db.pool,
      config: testConfig({ AGENTINA_KEYS_DIR: keys.dir }),
      authenticate: testAuthenticate(db.pool),
    });
    app = t.app;
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  async function issue(
    licenseId: string,
    principal = 'admin:adm_testadmin0000000001',
    extra: Record<string, unknown> = {},
  ) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/admin/activation-tokens',
      headers: { 'x-test-principal': principal },
      payload: { licenseId, ...extra },
    });
    return res;
  }
  async function tokenFor(licenseId: string): Promise<string> {
    const res = await issue(licenseId);
    expect(res.statusCode).toBe(201);
    return res.json().token as string;
  }
  const activate = (body: unknown, ip = nextIp()) =>
    app.inject({ method: 'POST', url: '/v1/agent/activate', payload: body as object, remoteAddress: ip });
  const auditRows = async (action: string, subjectId?: string) =>
    (
      await db.adminPool.query(
        'SELECT actor_kind, actor_id, subject_id, data FROM agentina.audit_events WHERE action = $1 AND ($2::text IS NULL OR subject_id = $2) ORDER BY seq',
        [action, subjectId ?? null],
      )
    ).rows;

  describe('issuing, listing, revoking', () => {
    it('issues an act_ token once, stores only its sha256, and lists it without the secret', async () => {
      const cus = await insertCustomer(db.pool);
      const lic = await insertLicense(db.pool, cus);
      const res = await issue(lic, 'admin:adm_testadmin0000000001', { label: 'rack 4', ttlSeconds: 3600 });
      expect(res.statusCode).toBe(201);
      expect(res.headers['cache-control']).toBe('no-store');
      const { token, activationToken } = res.json();
      expect(token).toMatch(/^act_[A-Za-z0-9_-]{43}$/);
      expect(activationToken).toMatchObject({
        licenseId: lic,
        customerId: cus,
        label: 'rack 4',
        state: 'pending',
        agentId: null,
      });
      expect(Date.parse(activationToken.expiresAt) - Date.parse(activationToken.createdAt)).toBe(3600_000);
      const stored = await db.adminPool.query('SELECT * FROM agentina.activation_tokens WHERE id = $1', [
        activationToken.id,
      ]);
      expect(stored.rows[0].token_hash).toBe(sha256(token));
      expect(JSON.stringify(stored.rows[0])).not.toContain(token);
      const list = await app.inject({
        method: 'GET',
        url: `/v1/admin/activation-tokens?licenseId=${lic}`,
        headers: { 'x-test-principal': 'admin:adm_testadmin0000000001' },
      });
      expect(list.statusCode).toBe(200);
      expect(list.json().items).toEqual([activationToken]);
      expect(list.body).not.toContain(token);
      expect((await auditRows('activation_token.created', activationToken.id))[0]).toMatchObject({
        actor_kind: 'admin',
        actor_id: 'adm_testadmin0000000001',
      });
      expect(JSON.stringify(await auditRows('activation_token.created'))).not.toContain(token);
      expect(t.logs.text()).not.toContain(token);
    });

    it('defaults to a 24 h lifetime, and a service account is audited as system', async () => {
      const lic = await insertLicense(db.pool, await insertCustomer(db.pool));
      const res = await issue(lic, 'service:svcacct_testservice00000001');
      expect(res.statusCode).toBe(201);
      const v = res.json().activationToken;
      expect(Date.parse(v.expiresAt) - Date.parse(v.createdAt)).toBe(24 * 3600_000);
      expect((await auditRows('activation_token.created', v.id))[0]).toMatchObject({
        actor_kind: 'system',
        actor_id: 'svcacct_testservice00000001',
      });
    });

    it("answers a customer's offline request with their own token only: another tenant's token is a 404 and stays unspent", async () => {
      const mine = await insertCustomer(db.pool);
      const theirs = await insertCustomer(db.pool);
      const me = `customer:usr_testcustomer000000002:${mine}`;
      const myIssued = (await issue(await insertLicense(db.pool, mine))).json();
      const theirIssued = (await issue(await insertLicense(db.pool, theirs))).json();
      const requestFor = (tokenId: string) => {
        const { token: _token, hostnameHint: _hint, ...rest } = activateBody('act_unused000000000000000000');
        return {
          format: 'agentina.offline-activation-request/v1',
          requestId: 'r'.repeat(32),
          tokenId,
          ...rest,
          createdAt: new Date().toISOString(),
        };
      };
      const respond = (tokenId: string, token: string) =>
        app.inject({
          method: 'POST',
          url: '/v1/portal/activation-tokens/offline-response',
          headers: { 'x-test-principal': me },
          payload: { request: requestFor(tokenId), token },
        });
      const other = await respond(theirIssued.activationToken.id, theirIssued.token);
      expect(other.statusCode).toBe(404);
      expect(other.body).not.toContain(theirIssued.token);
      const { rows } = await db.pool.query('SELECT spent_at FROM activation_tokens WHERE id = $1', [
        theirIssued.activationToken.id,
      ]);
      expect(rows[0].spent_at).toBeNull();
      const ok = await respond(myIssued.activationToken.id, myIssued.token);
      expect(ok.statusCode).toBe(200);
      expect(ok.headers['cache-control']).toBe('no-store');
      const audit = await auditRows('activation_token.offline_response', myIssued.activationToken.id);
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({ actor_kind: 'customer', actor_id: 'usr_testcustomer000000002' });
    });

    it('lets a customer issue, list and revoke tokens for their own licenses only (another tenant is a 404)', async () => {
      const mine = await insertCustomer(db.pool);
      const theirs = await insertCustomer(db.pool);
      const myLic = await insertLicense(db.pool, mine);
      const theirLic = await insertLicense(db.pool, theirs);
      const me = `customer:usr_testcustomer000000001:${mine}`;
      const ok = await app.inject({
        method: 'POST',
        url: '/v1/portal/activation-tokens',
        headers: { 'x-test-principal': me },
        payload: { licenseId: myLic },
      });
      expect(ok.statusCode).toBe(201);
      const other = await app.inject({
        method: 'POST',
        url: '/v1/portal/activation-tokens',
        headers: { 'x-test-principal': me },
        payload: { licenseId: theirLic },
      });
      expect(other.statusCode).toBe(404);
      expect(other.json().error.code).toBe('NOT_FOUND');
      const theirToken = (await issue(theirLic)).json().activationToken.id as string;
      const list = await app.inject({
        method: 'GET',
        url: '/v1/portal/activation-tokens',
        headers: { 'x-test-principal': me },
      });
      expect(list.json().items.map((i: { id: string }) => i.id)).toEqual([ok.json().activationToken.id]);
      for (const [method, url] of [
        ['GET', `/v1/portal/activation-tokens/${theirToken}`],
        ['POST', `/v1/portal/activation-tokens/${theirToken}/revoke`],
      ] as const) {
        const res = await app.inject({
          method,
          url,
          headers: { 'x-test-principal': me },
          ...(method === 'POST' ? { payload: {} } : {}),
        });
        expect(res.statusCode).toBe(404);
      }
      const revoked = await app.inject({
        method: 'POST',
        url: `/v1/portal/activation-tokens/${ok.json().activationToken.id}/revoke`,
        headers: { 'x-test-principal': me },
        payload: {},
      });
      expect(revoked.statusCode).toBe(200);
      expect(revoked.json().state).toBe('revoked');
      const again = await app.inject({
        method: 'POST',
        url: `/v1/portal/activation-tokens/${ok.json().activationToken.id}/revoke`,
        headers: { 'x-test-principal': me },
        payload: {},
      });
      expect(again.statusCode).toBe(409);
      expect(await auditRows('activation_token.revoked', ok.json().activationToken.id)).toHaveLength(1);
    });

    it('refuses tokens for a revoked license and for unknown licenses', async () => {
      const cus = await insertCustomer(db.pool);
      const revoked = await insertLicense(db.pool, cus, { state: 'revoked' });
      expect((await issue(revoked)).statusCode).toBe(409);
      expect((await issue('lic_doesnotexist00000000000')).statusCode).toBe(404);
    });

    it.each([
      ['unknown field', { extra: 1 }],
      ['ttl too short', { ttlSeconds: 10 }],
      ['ttl too long', { ttlSeconds: 365 * 86400 }],
      ['label too long', { label: 'x'.repeat(201) }],
    ])('rejects a bad issue request (%s) with 400', async (_name, extra) => {
      const lic = await insertLicense(db.pool, await insertCustomer(db.pool));
      const res = await issue(lic, 'admin:adm_testadmin0000000001', extra);
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('VALIDATION_FAILED');
    });

    it('who may call: anonymous 401; customer, agent on admin routes 403; admin on portal routes 403', async () => {
      const cus = await insertCustomer(db.pool);
      const lic = await insertLicense(db.pool, cus);
      const anon = await app.inject({ method: 'GET', url: '/v1/admin/activation-tokens' });
      expect(anon.statusCode).toBe(401);
      const asCustomer = await app.inject({
        method: 'GET',
        url: '/v1/admin/activation-tokens',
        headers: { 'x-test-principal': `customer:usr_testcustomer000000001:${cus}` },
      });
      expect(asCustomer.statusCode).toBe(403);
      const agent = (await activate(activateBody(await tokenFor(lic)))).json();
      const asAgent = await app.inject({
        method: 'POST',
        url: '/v1/admin/activation-tokens',
        headers: { authorization: `Bearer ${agent.credential}` },
        payload: { licenseId: lic },
      });
      expect(asAgent.statusCode).toBe(403);
      const adminOnPortal = await app.inject({
        method: 'GET',
        url: '/v1/portal/activation-tokens',
        headers: { 'x-test-principal': 'admin:adm_testadmin0000000001' },
      });
      expect(adminOnPortal.statusCode).toBe(403);
    });
  });

  describe('redemption', () => {
    it('activates: credential once (stored hashed), signed license bound to the agent and its fingerprint, signed status', async () => {
      const cus = await insertCustomer(db.pool);
      const lic = await insertLicense(db.pool, cus, { maxAgents: 3, version: 4 });
      const token = await tokenFor(lic);
      const body = activateBody(token);
      const res = await activate(body, '203.0.113.7');
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      const answer = activateResponseSchema.parse(res.json());
      expect(answer.credential).toMatch(/^agc_/);
      const license = verifySignedLicense(answer.license, keySet);
      expect(license.ok).toBe(true);
      expect(answer.license.document).toMatchObject({
        licenseId: lic,
        customerId: cus,
        plan: 'pro',
        maxAgents: 3,
        version: 4,
        graceDays: 7,
        features: { seats: 5, gpu: true },
        agentId: answer.agentId,
        fingerprintCommitment: fingerprintCommitment(body.fingerprint.salt, body.fingerprint.components),
      });
      expect(verifySignature(answer.status.payload, answer.status.signature, keySet)).toEqual({ ok: true });
      expect(answer.status.payload).toMatchObject({
        agentId: answer.agentId,
        licenseId: lic,
        licenseState: 'active',
        agentStatus: 'active',
        good: true,
        version: 4,
      });
      const row = (await db.adminPool.query('SELECT * FROM agentina.agents WHERE id = $1', [answer.agentId])).rows[0];
      expect(row).toMatchObject({
        license_id: lic,
        customer_id: cus,
        credential_hash: sha256(answer.credential),
        fingerprint: body.fingerprint.components,
        fingerprint_salt: body.fingerprint.salt,
        public_key: body.publicKey,
      });
      expect(JSON.stringify(row)).not.toContain(answer.credential);
      const tok = (
        await db.adminPool.query(
          'SELECT spent_at, spent_ip, agent_id FROM agentina.activation_tokens WHERE token_hash = $1',
          [sha256(token)],
        )
      ).rows[0];
      expect(tok).toMatchObject({ spent_ip: '203.0.113.7', agent_id: answer.agentId });
      expect(await auditRows('agent.activated', answer.agentId)).toHaveLength(1);
      expect(JSON.stringify(await auditRows('activation_token.redeemed'))).not.toContain(answer.credential);
      // the credential works for the agent API
      const status = await app.inject({
        method: 'GET',
        url: '/v1/agent/status',
        headers: { authorization: `Bearer ${answer.credential}` },
      });
      expect(status.statusCode).toBe(200);
      expect(t.logs.text()).not.toContain(answer.credential);
      expect(t.logs.text()).not.toContain(token);
    });

    it('50 concurrent redemptions of one token: exactly 1 success, 49 rejections, 49 audit rows', async () => {
      const lic = await insertLicense(db.pool, await insertCustomer(db.pool), { maxAgents: 100 });
      const token = await tokenFor(lic);
      const tokenId = (
        await db.adminPool.query('SELECT id FROM agentina.activation_tokens WHERE token_hash = $1', [sha256(token)])
      ).rows[0].id;
      const ips = Array.from({ length: 50 }, () => nextIp());
      const results = await Promise.all(ips.map((ip) => activate(activateBody(token), ip)));
      const ok = results.filter((r) => r.statusCode === 200);
      const refused = results.filter((r) => r.statusCode === 410);
      expect(ok).toHaveLength(1);
      expect(refused).toHaveLength(49);
      for (const r of refused)
        expect(r.json().error).toMatchObject({
          code: 'GONE',
          message: 'This activation token has already been used; ask for a new one.',
        });
      const audits = await auditRows('activation_token.reused', tokenId);
      expect(audits).toHaveLength(49);
      const winnerIp = ips[results.indexOf(ok[0]!)];
      expect(new Set(audits.map((a) => a.data.ip))).toEqual(new Set(ips.filter((ip) => ip !== winnerIp)));
      expect(audits.every((a) => a.data.reason === 'spent' && a.data.licenseId === lic)).toBe(true);
      expect(
        (await db.adminPool.query('SELECT count(*)::int AS n FROM agentina.agents WHERE license_id = $1', [lic]))
          .rows[0].n,
      ).toBe(1);
    });

    it('an expired or revoked token is refused with one clear error and audited with the presenting IP', async () => {
      const lic = await insertLicense(db.pool, await insertCustomer(db.pool));
      const expired = await tokenFor(lic);
      await db.adminPool.query(
        "UPDATE agentina.activation_tokens SET created_at = now() - interval '2 days', expires_at = now() - interval '1 second' WHERE token_hash = $1",
        [sha256(expired)],
      );
      const revokedRes = await issue(lic);
      const revoked = revokedRes.json().token as string;
      await app.inject({
        method: 'POST',
        url: `/v1/admin/activation-tokens/${revokedRes.json().activationToken.id}/revoke`,
        headers: { 'x-test-principal': 'admin:adm_testadmin0000000001' },
        payload: {},
      });
      for (const [token, reason, message] of [
        [expired, 'expired', /expired/],
        [revoked, 'revoked', /revoked/],
      ] as const) {
        const res = await activate(activateBody(token), '198.51.100.9');
        expect(res.statusCode).toBe(410);
        expect(res.json().error.message).toMatch(message);
        const id = (
          await db.adminPool.query('SELECT id FROM agentina.activation_tokens WHERE token_hash = $1', [sha256(token)])
        ).rows[0].id;
        const audits = await auditRows('activation_token.reused', id);
        expect(audits).toHaveLength(1);
        expect(audits[0]).toMatchObject({ actor_kind: 'agent', data: { ip: '198.51.100.9', reason } });
      }
    });

    it('an unknown token is a 401 and writes nothing', async () => {
      const before = (await db.adminPool.query('SELECT count(*)::int AS n FROM agentina.audit_events')).rows[0].n;
      const res = await activate(activateBody(`act_${'A'.repeat(43)}`));
      expect(res.statusCode).toBe(401);
      expect((await db.adminPool.query('SELECT count(*)::int AS n FROM agentina.audit_events')).rows[0].n).toBe(before);
    });

    it('enforces the license maximum of agents; the refused token stays usable', async () => {
      const lic = await insertLicense(db.pool, await insertCustomer(db.pool), { maxAgents: 2 });
      const tokens = [await tokenFor(lic), await tokenFor(lic), await tokenFor(lic)];
      const results = await Promise.all(tokens.map((tk) => activate(activateBody(tk))));
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 200, 409]);
      const refused = results.find((r) => r.statusCode === 409)!;
      expect(refused.json().error.message).toMatch(/maximum of 2/);
      const left = tokens[results.indexOf(refused)]!;
      const row = (
        await db.adminPool.query('SELECT spent_at FROM agentina.activation_tokens WHERE token_hash = $1', [
          sha256(left),
        ])
      ).rows[0];
      expect(row.spent_at).toBeNull();
      // a deregistered agent frees its seat
      await db.adminPool.query("UPDATE agentina.agents SET status = 'deregistered' WHERE id = $1", [
        results.find((r) => r.statusCode === 200)!.json().agentId,
      ]);
      expect((await activate(activateBody(left))).statusCode).toBe(200);
    });

    it('refuses activation on a suspended license without spending the token', async () => {
      const lic = await insertLicense(db.pool, await insertCustomer(db.pool));
      const token = await tokenFor(lic);
      await transitionLicenseByHand(db.pool, lic, 'suspended', 'unpaid');
      const res = await activate(activateBody(token));
      expect(res.statusCode).toBe(409);
      expect(res.json().error.message).toMatch(/suspended/);
      await transitionLicenseByHand(db.pool, lic, 'active');
      expect((await activate(activateBody(token))).statusCode).toBe(200);
    });

    it.each([
      ['a malformed token', (b: ReturnType<typeof activateBody>) => ({ ...b, token: 'act_short' })],
      [
        'an RSA key instead of Ed25519',
        (b: ReturnType<typeof activateBody>) => ({
          ...b,
          publicKey: `-----BEGIN PUBLIC KEY-----\n${'A'.repeat(60)}\n-----END PUBLIC KEY-----`,
        }),
      ],
      ['an unknown field', (b: ReturnType<typeof activateBody>) => ({ ...b, admin: true })],
      [
        'a missing fingerprint component',
        (b: ReturnType<typeof activateBody>) => ({
          ...b,
          fingerprint: { salt: b.fingerprint.salt, components: { ...b.fingerprint.components, disk: undefined } },
        }),
      ],
      ['a bad version', (b: ReturnType<typeof activateBody>) => ({ ...b, agentVersion: 'latest' })],
    ])('rejects %s with 400 and leaves the token unspent', async (_name, mutate) => {
      const lic = await insertLicense(db.pool, await insertCustomer(db.pool));
      const token = await tokenFor(lic);
      const res = await activate(mutate(activateBody(token)));
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('VALIDATION_FAILED');
      expect((await activate(activateBody(token))).statusCode).toBe(200);
    });

    it('limits activation attempts per IP', async () => {
      const codes: number[] = [];
      for (let i = 0; i < 12; i++)
        codes.push((await activate(activateBody(`act_${'B'.repeat(43)}`), '192.0.2.200')).statusCode);
      expect(codes.slice(0, 10).every((c) => c === 401)).toBe(true);
      expect(codes.slice(10)).toEqual([429, 429]);
    });
  });
});
