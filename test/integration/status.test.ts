import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import type { App } from '../../api/app';
import type { LicenseService } from '../../services/licenses/license-service';
import { createTemporal } from '../../services/temporal';
import {
  PROOF_HEADER,
  signedRevocationsSchema,
  statusResponseSchema,
  systemClock,
  verifySignature,
  type KeySet,
  type StatusResponse,
} from '../../protocol';
import { testLicenseService } from '../support/license-helpers';
import { buildTestApp, readMetrics, testConfig, testServices } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import {
  createTestKeys,
  insertAgents,
  insertCustomer,
  insertLicense,
  quarantineAgentByHand,
  transitionLicenseByHand,
} from '../support/activation-fixtures';
import { connectTestTemporal, runWorkerInBackground, type TestTemporal } from '../support/temporal';

type TestApp = Awaited<ReturnType<typeof buildTestApp>>;

describe('GET /v1/agent/status (long-poll) and GET /v1/agent/revocations', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeys>;
  let keySet: KeySet;
  let temporal: TestTemporal;
  let stopWorker: () => Promise<void>;
  let a: TestApp;
  let b: TestApp;
  let licenses: LicenseService;

  beforeAll(async () => {
    db = await createTestDatabase('status');
    keys = createTestKeys();
    keySet = keys.keySet;
    temporal = await connectTestTemporal('status');
    const worker = await Worker.create({
      connection: temporal.nativeConnection,
      taskQueue: temporal.taskQueue,
      workflowBundle: temporal.workflowBundle,
      activities: createActivities(testServices({ pool: db.pool, clock: systemClock, keysDir: keys.dir })),
    });
    stopWorker = runWorkerInBackground(worker);
    const config = testConfig({ AGENTINA_KEYS_DIR: keys.dir });
    // Two API processes on one database: each has its own LISTEN connection.
    // The production authenticator: the agent resolver reuses lookups while no notice concerns the agent.
    a = await buildTestApp({ pool: db.pool, config });
    b = await buildTestApp({ pool: db.pool, config });
    licenses = testLicenseService({
      pool: db.pool,
      temporal: { client: temporal.client, taskQueue: temporal.taskQueue },
      keysDir: keys.dir,
    });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await stopWorker?.();
    await temporal?.close();
    await db?.drop();
    keys?.remove();
  });

  async function agentsOn(count: number, license: { state?: 'active' | 'trial'; version?: number } = {}) {
    const cus = await insertCustomer(db.pool);
    const lic = await insertLicense(db.pool, cus, { maxAgents: 100, ...license });
    return { cus, lic, agents: await insertAgents(db.pool, lic, cus, count) };
  }
  const getStatus = (app: App, credential: string, query = '') =>
    app.inject({ method: 'GET', url: `/v1/agent/status${query}`, headers: { authorization: `Bearer ${credential}` } });
  const parked = async (app: App) => Number(/agentina_status_parked (\d+)/.exec(await readMetrics(app))![1]);
  const noticesSeen = async (app: App) =>
    Number(/agentina_status_notices_received (\d+)/.exec(await readMetrics(app))![1]);

  /** Runs `change` and waits until `app` has received its NOTIFY (a cached read is valid until then). */
  async function changeAndAwaitNotice(app: App, change: () => Promise<unknown>) {
    const before = await noticesSeen(app);
    await change();
    for (let i = 0; i < 500 && (await noticesSeen(app)) <= before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await noticesSeen(app)).toBeGreaterThan(before);
  }
  async function untilParked(app: App, n: number) {
    for (let i = 0; i < 500 && (await parked(app)) < n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await parked(app)).toBeGreaterThanOrEqual(n);
  }
  function verified(body: unknown): StatusResponse {
    const parsed = statusResponseSchema.parse(body);
    expect(verifySignature(parsed.status.payload, parsed.status.signature, keySet)).toEqual({ ok: true });
    return parsed;
  }

  it('answers at once with a signed status when `since` is absent or older', async () => {
    const { lic, agents } = await agentsOn(1, { version: 3 });
    const res = await getStatus(a.app, agents[0]!.credential);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const s = verified(res.json());
    expect(s.changed).toBe(true);
    expect(s.status.payload).toMatchObject({
      kind: 'agentina.status/v1',
      licenseId: lic,
      agentId: agents[0]!.agentId,
      licenseState: 'active',
      agentStatus: 'active',
      good: true,
      version: 3,
    });
    expect(s.status.payload.reason).toBeUndefined();
    expect(Math.abs(Date.parse(s.status.payload.serverTime) - Date.now())).toBeLessThan(60_000);
    const older = verified((await getStatus(a.app, agents[0]!.credential, '?since=2&wait=30')).json());
    expect(older).toMatchObject({ changed: true, status: { payload: { version: 3 } } });
    const same = verified((await getStatus(a.app, agents[0]!.credential, '?since=3&wait=0')).json());
    expect(same.changed).toBe(false);
  });

  it('a parked long-poll on either API process wakes on the NOTIFY of a transition', async () => {
    const { lic, agents } = await agentsOn(3);
    const polls = agents.map((ag, i) => getStatus(i % 2 ? b.app : a.app, ag.credential, '?since=1&wait=30'));
    await untilParked(a.app, 2);
    await untilParked(b.app, 1);
    await transitionLicenseByHand(db.pool, lic, 'suspended', 'invoice overdue');
    for (const res of await Promise.all(polls)) {
      const s = verified(res.json());
      expect(s).toMatchObject({
        changed: true,
        status: { payload: { licenseState: 'suspended', good: false, version: 2, reason: 'invoice overdue' } },
      });
    }
  });

  it('wakes every parked agent on both processes when an admin revokes through the real licenseLifecycle workflow', async () => {
    const cus = await insertCustomer(db.pool);
    const created = await licenses.createLicense(
      { kind: 'admin', id: 'adm_statustester0000001' },
      {
        customerId: cus,
        plan: 'pro',
        features: {},
        maxAgents: 10,
        graceDays: 7,
        trialEndState: 'expired',
        term: { days: 365 },
      },
    );
    const lic = created.license.id;
    const agents = await insertAgents(db.pool, lic, cus, 4);
    const first = verified((await getStatus(a.app, agents[0]!.credential)).json());
    const since = first.status.payload.version;
    const polls = agents.map((ag, i) => getStatus(i % 2 ? b.app : a.app, ag.credential, `?since=${since}&wait=30`));
    await untilParked(a.app, 2);
    await untilParked(b.app, 2);
    await licenses.revokeLicense(lic, { kind: 'admin', id: 'adm_statustester0000001' }, 'contract terminated');
    for (const res of await Promise.all(polls)) {
      const s = verified(res.json());
      expect(s.changed).toBe(true);
      expect(s.status.payload).toMatchObject({ licenseId: lic, licenseState: 'revoked', good: false });
      expect(s.status.payload.version).toBeGreaterThan(since);
    }
  });

  it('an agent-level notice wakes only that agent; a quarantined agent learns it with the reason', async () => {
    const { agents } = await agentsOn(2);
    const [x, y] = agents as [(typeof agents)[0], (typeof agents)[0]];
    const pollX = getStatus(a.app, x.credential, '?since=1&wait=30');
    let yAnswered = false;
    const pollY = getStatus(a.app, y.credential, '?since=1&wait=2').then((r) => ((yAnswered = true), r));
    await untilParked(a.app, 2);
    await quarantineAgentByHand(db.pool, x.agentId, 'fingerprint mismatch');
    const sx = verified((await pollX).json());
    expect(sx.status.payload).toMatchObject({
      agentId: x.agentId,
      agentStatus: 'quarantined',
      good: false,
      version: 2,
      reason: 'fingerprint mismatch',
    });
    expect(yAnswered).toBe(false);
    expect(verified((await pollY).json())).toMatchObject({
      changed: false,
      status: { payload: { agentId: y.agentId, version: 1, good: true } },
    });
  });

  it('a replayed or altered answer is detectable: the signature covers version and serverTime', async () => {
    const { lic, agents } = await agentsOn(1);
    const before = verified((await getStatus(a.app, agents[0]!.credential)).json());
    await changeAndAwaitNotice(a.app, () => transitionLicenseByHand(db.pool, lic, 'revoked', 'fraud'));
    const after = verified((await getStatus(a.app, agents[0]!.credential)).json());
    // an attacker replaying the old "good" answer offers a lower version and an older server time
    expect(before.status.payload.good).toBe(true);
    expect(after.status.payload.version).toBeGreaterThan(before.status.payload.version);
    expect(Date.parse(after.status.payload.serverTime)).toBeGreaterThanOrEqual(
      Date.parse(before.status.payload.serverTime),
    );
    // and cannot dress the old answer up as new
    for (const forged of [
      { ...before.status.payload, version: after.status.payload.version },
      { ...before.status.payload, serverTime: after.status.payload.serverTime },
      { ...after.status.payload, good: true },
    ]) {
      expect(verifySignature(forged, before.status.signature, keySet)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
      expect(verifySignature(forged, after.status.signature, keySet)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
    }
  });

  it('an agent only ever reads its own status; bad, unknown and dead credentials are 401', async () => {
    const one = await agentsOn(1);
    const two = await agentsOn(1);
    // the route takes no agent id: an attempt to name another agent is refused as a bad query
    const named = await getStatus(a.app, one.agents[0]!.credential, `?agentId=${two.agents[0]!.agentId}`);
    expect(named.statusCode).toBe(400);
    const own = verified((await getStatus(a.app, one.agents[0]!.credential)).json());
    expect(own.status.payload.agentId).toBe(one.agents[0]!.agentId);
    expect(own.status.payload.licenseId).toBe(one.lic);
    for (const header of [
      `Bearer agc_${'x'.repeat(43)}`,
      'Bearer agc_short',
      `Bearer ${one.agents[0]!.credential}x`,
      'Basic Zm9vOmJhcg==',
    ]) {
      const res = await a.app.inject({ method: 'GET', url: '/v1/agent/status', headers: { authorization: header } });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('UNAUTHENTICATED');
    }
    // a deregistered agent's credential dies at once, cached lookup or not
    expect((await getStatus(a.app, two.agents[0]!.credential)).statusCode).toBe(200);
    await changeAndAwaitNotice(a.app, () =>
      quarantineAgentByHand(db.pool, two.agents[0]!.agentId, 'deregistered by its owner', 'deregistered'),
    );
    expect((await getStatus(a.app, two.agents[0]!.credential)).statusCode).toBe(401);
    // other kinds of bearer token are not agent credentials
    const svc = await a.app.inject({
      method: 'GET',
      url: '/v1/agent/status',
      headers: { authorization: `Bearer svc_${'s'.repeat(43)}` },
    });
    expect(svc.statusCode).toBe(401);
    expect(a.logs.text()).not.toContain(one.agents[0]!.credential);
  });

  it.each([
    '?since=-1',
    '?since=abc',
    '?wait=31',
    '?wait=-1',
    '?wait=1.5',
    '?since=1&extra=1',
    '?since=1&signatures=none',
    `?since=${'9'.repeat(30)}`,
  ])('rejects the bad query %s with 400', async (q) => {
    const { agents } = await agentsOn(1);
    const res = await getStatus(a.app, agents[0]!.credential, q);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('VALIDATION_FAILED');
  });

  it('keeps waking parked requests after the LISTEN connection is killed (it reconnects)', async () => {
    const { lic, agents } = await agentsOn(1);
    const killed = await db.adminPool.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN agentina_status'",
    );
    expect(killed.rowCount).toBe(2);
    const poll = getStatus(a.app, agents[0]!.credential, '?since=1&wait=30');
    for (let i = 0; i < 500; i++) {
      const up = /agentina_status_listener_up (\d)/.exec(await readMetrics(a.app))![1];
      if (up === '1' && (await parked(a.app)) >= 1) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await transitionLicenseByHand(db.pool, lic, 'revoked', 'after reconnect');
    expect(verified((await poll).json()).status.payload).toMatchObject({
      licenseState: 'revoked',
      reason: 'after reconnect',
    });
  });

  it('answers parked requests when the app closes, and leaves no LISTEN connection behind', async () => {
    const { agents } = await agentsOn(1);
    const c = await buildTestApp({
      pool: db.pool,
      config: testConfig({ AGENTINA_KEYS_DIR: keys.dir }),
      temporal: createTemporal(testConfig()),
    });
    const poll = getStatus(c.app, agents[0]!.credential, '?since=1&wait=30');
    await untilParked(c.app, 1);
    const listening = async () =>
      (
        await db.adminPool.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%LISTEN agentina_status'",
        )
      ).rows[0].n as number;
    const before = await listening();
    expect(before).toBe(3);
    await c.close();
    await c.temporal.close();
    expect(verified((await poll).json())).toMatchObject({ changed: false, status: { payload: { version: 1 } } });
    let after = before;
    for (let i = 0; i < 200 && after !== before - 1; i++) {
      await new Promise((r) => setTimeout(r, 10));
      after = await listening();
    }
    expect(after).toBe(before - 1);
  });

  describe('GET /v1/agent/revocations', () => {
    // Its own address: the 401 probes of the tests above spent 127.0.0.1's failed-authentication budget.
    const FEED_CALLER = '192.0.2.77';
    const readFeed = (credential: string | null, query = '', headers: Record<string, string | undefined> = {}) =>
      a.app.inject({
        method: 'GET',
        remoteAddress: FEED_CALLER,
        url: `/v1/agent/revocations${query}`,
        headers: { ...(credential ? { authorization: `Bearer ${credential}` } : {}), ...headers },
      });
    const page = async (credential: string, query: string) => {
      const signed = signedRevocationsSchema.parse((await readFeed(credential, query)).json());
      expect(verifySignature(signed.payload, signed.signature, keySet)).toEqual({ ok: true });
      return signed.payload;
    };

    it("lists signed bad news for the agent's own license only, paged by cursor", async () => {
      const mine = await agentsOn(2);
      const other = await agentsOn(1);
      const credential = mine.agents[0]!.credential;
      await transitionLicenseByHand(db.pool, other.lic, 'revoked', 'someone else');
      expect((await readFeed(credential)).statusCode).toBe(200);
      expect(await page(credential, '')).toMatchObject({ kind: 'agentina.revocations/v1', items: [], nextCursor: 0 });
      await quarantineAgentByHand(db.pool, mine.agents[1]!.agentId, 'tampered');
      await transitionLicenseByHand(db.pool, mine.lic, 'suspended', 'unpaid');
      await transitionLicenseByHand(db.pool, mine.lic, 'active');
      await transitionLicenseByHand(db.pool, mine.lic, 'revoked', 'terminated');
      const page1 = await page(credential, '?since=0&limit=2');
      expect(page1.items.map((i) => [i.state, i.agentId ?? null, i.reason])).toEqual([
        ['quarantined', mine.agents[1]!.agentId, 'tampered'],
        ['suspended', null, 'unpaid'],
      ]);
      const page2 = await page(credential, `?since=${page1.nextCursor}`);
      expect(page2.items.map((i) => i.state)).toEqual(['revoked']);
      expect(page2.items.every((i) => i.licenseId === mine.lic)).toBe(true);
      // The other license's agent sees only its own license's revocation.
      const theirs = await page(other.agents[0]!.credential, '');
      expect(theirs.items.map((i) => [i.licenseId, i.reason])).toEqual([[other.lic, 'someone else']]);
      for (const q of ['?since=x', '?since=-1', '?limit=0', '?limit=1001', '?since=1e400', '?licenseId=x'])
        expect((await readFeed(credential, q)).statusCode).toBe(400);
      expect((await readFeed(null)).statusCode).toBe(401);
      // A leaked credential without the agent's key (no proof of possession) reads nothing.
      const thief = await readFeed(credential, '', { [PROOF_HEADER]: undefined });
      expect(thief.statusCode).toBe(401);
      expect(thief.body).not.toContain('terminated');
    });
  });
});
