import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type InjectOptions } from 'fastify';
import { installAccessControl } from '../../api/auth/access';
import { installErrorHandling } from '../../api/errors';
import { AUTH_FAILURES_PER_ADDRESS } from '../../api/app';
import { ADMIN_COOKIE, PORTAL_COOKIE } from '../../api/identity/cookies';
import { LOGIN_RATE_LIMIT } from '../../api/identity/auth-routes';
import { createFixedClock, newSecret } from '../../protocol';
import { buildTestApp, testConfig } from '../support/app';
import { revokeServiceAccount } from '../../db/service-accounts-repo';
import { insertAgents } from '../support/activation-fixtures';
import { createAgentWithLicense } from '../support/agent-server-fixtures';
import { createFailureBudget, createProvenCredentials } from '../../services/identity/failure-budget';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { nextIp, seedServiceAccount } from '../support/identity';

const BUDGET = AUTH_FAILURES_PER_ADDRESS.max;

/**
 * Rate limits run before authentication, for every kind of credential: an anonymous guesser's
 * failed bearer tokens and cookies spend its address's budget, and past it nothing is looked up.
 * Behind a reverse proxy (TRUST_PROXY) the budget is the client's, never the proxy's, and nobody
 * else's X-Forwarded-For is believed.
 */
describe('failed authentications are limited per client address, before any lookup', () => {
  let db: TestDatabase;
  let direct: Awaited<ReturnType<typeof buildTestApp>>;
  let proxied: Awaited<ReturnType<typeof buildTestApp>>;
  const clock = createFixedClock(new Date());
  const PROXY = '10.77.0.1';
  /** Credential lookups the app sent to PostgreSQL (service tokens, sessions, agent credentials). */
  let lookups = 0;
  /** Of those, how many are in flight now, and the most ever in flight at once since last reset. */
  let inFlight = 0;
  let peakInFlight = 0;

  beforeAll(async () => {
    db = await createTestDatabase('authlimit');
    const query = db.pool.query.bind(db.pool) as (...args: unknown[]) => unknown;
    jest.spyOn(db.pool, 'query').mockImplementation((...args: unknown[]) => {
      const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string })?.text ?? '');
      if (!/FROM service_accounts WHERE token_hash|_sessions s JOIN|WHERE credential_hash = ANY/.test(text))
        return query(...args);
      lookups++;
      peakInFlight = Math.max(peakInFlight, ++inFlight);
      return (query(...args) as Promise<unknown>).finally(() => inFlight--);
    });
    direct = await buildTestApp({ pool: db.pool, clock });
    proxied = await buildTestApp({ pool: db.pool, clock, config: testConfig({ TRUST_PROXY: `${PROXY},fd00::/8` }) });
  });
  afterAll(async () => {
    await direct?.close();
    await proxied?.close();
    jest.restoreAllMocks();
    await db?.drop();
  });

  const guess = (app = direct.app, opts: Partial<InjectOptions> & { ip: string; headers: Record<string, string> }) =>
    app.inject({ method: 'GET', url: '/v1/admin/customers', remoteAddress: opts.ip, headers: opts.headers });
  const svcGuess = () => ({ authorization: `Bearer ${newSecret('svc')}` });

  it(`${BUDGET} bad service tokens from one address, then 429 with no lookup; other addresses unaffected`, async () => {
    const ip = nextIp();
    const before = lookups;
    for (let i = 0; i < BUDGET; i++)
      expect((await guess(direct.app, { ip, headers: svcGuess() })).statusCode).toBe(401);
    expect(lookups - before).toBe(BUDGET);

    const refused = [];
    for (let i = 0; i < 20; i++) refused.push(await guess(direct.app, { ip, headers: svcGuess() }));
    for (const r of refused) {
      expect(r.statusCode).toBe(429);
      expect(r.json().error.code).toBe('RATE_LIMITED');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect(lookups - before).toBe(BUDGET); // nothing looked up past the budget

    // A real credential from that address waits too (it cannot be told from a guess unlooked).
    const service = await seedServiceAccount(db.pool);
    expect((await guess(direct.app, { ip, headers: { authorization: `Bearer ${service.token}` } })).statusCode).toBe(
      429,
    );
    // A public route is still served, as anonymous and without a lookup.
    const livez = await direct.app.inject({ method: 'GET', url: '/livez', remoteAddress: ip, headers: svcGuess() });
    expect(livez.statusCode).toBe(200);
    expect(lookups - before).toBe(BUDGET);
    // Another address is unaffected, and this one recovers when the window has passed.
    expect(
      (await guess(direct.app, { ip: nextIp(), headers: { authorization: `Bearer ${service.token}` } })).statusCode,
    ).toBe(200);
    clock.advance(AUTH_FAILURES_PER_ADDRESS.windowMs);
    expect((await guess(direct.app, { ip, headers: { authorization: `Bearer ${service.token}` } })).statusCode).toBe(
      200,
    );
  });

  it('every credential kind spends the same budget: cookies, agent credentials, malformed bearers', async () => {
    const ip = nextIp();
    const kinds = [
      { cookie: `${ADMIN_COOKIE}=${newSecret('sess')}` },
      { cookie: `${PORTAL_COOKIE}=${newSecret('sess')}` },
      { authorization: `Bearer ${newSecret('agc')}` },
      { authorization: 'Bearer not-even-a-token' },
      svcGuess(),
    ];
    for (let i = 0; i < BUDGET; i++) {
      const url = i % 2 ? '/v1/portal/licenses' : '/v1/admin/customers';
      const r = await direct.app.inject({ method: 'GET', url, remoteAddress: ip, headers: kinds[i % kinds.length]! });
      expect(r.statusCode).toBe(401);
    }
    const before = lookups;
    for (const headers of kinds) {
      expect((await guess(direct.app, { ip, headers })).statusCode).toBe(429);
      const agent = await direct.app.inject({ method: 'GET', url: '/v1/agent/status', remoteAddress: ip, headers });
      expect(agent.statusCode).toBe(429);
    }
    expect(lookups).toBe(before);
    // A request without any credential costs no lookup and is simply unauthenticated.
    expect((await guess(direct.app, { ip, headers: {} })).statusCode).toBe(401);
  });

  it('a burst of concurrent guesses cannot all slip past the budget', async () => {
    const ip = nextIp();
    const before = lookups;
    const answers = await Promise.all(
      Array.from({ length: 4 * BUDGET }, () => guess(direct.app, { ip, headers: svcGuess() })),
    );
    const codes = answers.map((a) => a.statusCode);
    expect(codes.filter((c) => c === 401)).toHaveLength(BUDGET);
    expect(codes.filter((c) => c === 429)).toHaveLength(3 * BUDGET);
    expect(lookups - before).toBe(BUDGET);
  });

  it(`a fleet of ${2 * BUDGET} agents behind one address, first contact after a restart, all at once: none is told 429`, async () => {
    // A fresh API remembers no credential as proven, so every one of them is looked up under the
    // address's budget: the first ${BUDGET} hold its places, the rest wait for one, none is refused.
    const fresh = await buildTestApp({ pool: db.pool, clock });
    try {
      const ip = nextIp();
      const first = await createAgentWithLicense(db.pool);
      const fleet = [first, ...(await insertAgents(db.pool, first.licenseId, first.customerId, 2 * BUDGET - 1))];
      const answers = await Promise.all(
        fleet.map((a) =>
          fresh.app.inject({
            method: 'GET',
            url: '/v1/agent/status',
            remoteAddress: ip,
            headers: { authorization: `Bearer ${a.credential}` },
          }),
        ),
      );
      expect(answers.map((a) => a.statusCode)).toEqual(Array<number>(fleet.length).fill(200));
    } finally {
      await fresh.close();
    }
  });

  it(`a guesser sending ${2 * BUDGET} bad credentials at once from one address: ${BUDGET} lookups at most, never more in flight, then 429`, async () => {
    const fresh = await buildTestApp({ pool: db.pool, clock });
    try {
      const ip = nextIp();
      const before = lookups;
      peakInFlight = inFlight;
      const answers = await Promise.all(
        Array.from({ length: 2 * BUDGET }, () => guess(fresh.app, { ip, headers: svcGuess() })),
      );
      const codes = answers.map((a) => a.statusCode);
      expect(codes.filter((c) => c === 401)).toHaveLength(BUDGET);
      expect(codes.filter((c) => c === 429)).toHaveLength(BUDGET);
      expect(lookups - before).toBe(BUDGET);
      expect(peakInFlight).toBeLessThanOrEqual(BUDGET);
      for (const r of answers.filter((a) => a.statusCode === 429)) {
        expect(r.json().error.code).toBe('RATE_LIMITED');
        expect(Number(r.headers['retry-after'])).toBe(AUTH_FAILURES_PER_ADDRESS.windowMs / 1000);
      }
      expect((await guess(fresh.app, { ip, headers: svcGuess() })).statusCode).toBe(429);
      expect(lookups - before).toBe(BUDGET);
    } finally {
      await fresh.close();
    }
  });

  it('valid credentials spend nothing: an address with many working agents is never limited', async () => {
    const ip = nextIp();
    const agent = await createAgentWithLicense(db.pool);
    for (let i = 0; i < 3 * BUDGET; i++) {
      const r = await direct.app.inject({
        method: 'GET',
        url: '/v1/agent/status',
        remoteAddress: ip,
        headers: { authorization: `Bearer ${agent.credential}` },
      });
      expect(r.statusCode).toBe(200);
    }
  });

  it('credentials that authenticated lately are no guesses: a burst of them in flight, or from an address out of budget, is served', async () => {
    const ip = nextIp();
    const first = await createAgentWithLicense(db.pool);
    const agents = [first, ...(await insertAgents(db.pool, first.licenseId, first.customerId, 4 * BUDGET - 1))];
    const status = (credential: string) =>
      direct.app.inject({
        method: 'GET',
        url: '/v1/agent/status',
        remoteAddress: ip,
        headers: { authorization: `Bearer ${credential}` },
      });
    // A fleet behind one address, each agent known: all of it at once (a reconnection after an
    // outage), every lookup in flight together, none held back.
    for (const a of agents) expect((await status(a.credential)).statusCode).toBe(200);
    const burst = await Promise.all(agents.map((a) => status(a.credential)));
    expect(burst.map((r) => r.statusCode).filter((c) => c !== 200)).toEqual([]);
    // A guesser behind the same address spends its budget: the known agents go on working.
    for (let i = 0; i < BUDGET; i++)
      expect((await guess(direct.app, { ip, headers: svcGuess() })).statusCode).toBe(401);
    expect((await guess(direct.app, { ip, headers: svcGuess() })).statusCode).toBe(429);
    expect((await status(agents[1]!.credential)).statusCode).toBe(200);
    // One that dies (a revoked service token) is looked up once more, fails, and is a stranger from then on.
    const service = await seedServiceAccount(db.pool);
    const bearer = { authorization: `Bearer ${service.token}` };
    expect((await guess(direct.app, { ip: nextIp(), headers: bearer })).statusCode).toBe(200);
    expect((await guess(direct.app, { ip, headers: bearer })).statusCode).toBe(200);
    await revokeServiceAccount(db.pool, service.id, new Date());
    const before = lookups;
    expect((await guess(direct.app, { ip, headers: bearer })).statusCode).toBe(401);
    expect(lookups - before).toBe(1);
    expect((await guess(direct.app, { ip, headers: bearer })).statusCode).toBe(429);
    expect(lookups - before).toBe(1);
  });

  describe('behind a reverse proxy (TRUST_PROXY)', () => {
    const viaProxy = (client: string, headers: Record<string, string>, from = PROXY) =>
      guess(proxied.app, { ip: from, headers: { ...headers, 'x-forwarded-for': client } });

    it("X-Forwarded-For from the trusted proxy separates clients' budgets", async () => {
      const [a, b] = ['198.51.100.7', '198.51.100.8'];
      for (let i = 0; i < BUDGET; i++) expect((await viaProxy(a, svcGuess())).statusCode).toBe(401);
      expect((await viaProxy(a, svcGuess())).statusCode).toBe(429);
      // Client B, through the same proxy, has its own budget; so does the proxy itself.
      expect((await viaProxy(b, svcGuess())).statusCode).toBe(401);
      // A client cannot escape by forging earlier hops: the proxy appends the address it saw.
      expect((await viaProxy(`203.0.113.99, ${a}`, svcGuess())).statusCode).toBe(429);
      // IPv6 clients are budgeted per /64: rotating addresses inside one block buys nothing.
      for (let i = 0; i < BUDGET; i++)
        expect((await viaProxy(`2001:db8:7:7::${i.toString(16)}`, svcGuess())).statusCode).toBe(401);
      expect((await viaProxy('2001:db8:7:7:ffff::1', svcGuess())).statusCode).toBe(429);
      expect((await viaProxy('2001:db8:7:8::1', svcGuess())).statusCode).toBe(401);
      // A trusted block (fd00::/8) is a proxy too: the client it names is the one budgeted.
      expect((await viaProxy(a, svcGuess(), 'fd00::5')).statusCode).toBe(429);
    });

    it("an untrusted sender's X-Forwarded-For is ignored: rotating it changes nothing", async () => {
      const sender = '203.0.113.50';
      for (let i = 0; i < BUDGET; i++)
        expect((await viaProxy(`192.0.2.${i + 1}`, svcGuess(), sender)).statusCode).toBe(401);
      expect((await viaProxy('192.0.2.200', svcGuess(), sender)).statusCode).toBe(429);
      // Without TRUST_PROXY nobody's X-Forwarded-For is believed.
      const ip = nextIp();
      for (let i = 0; i < BUDGET; i++)
        expect(
          (await guess(direct.app, { ip, headers: { ...svcGuess(), 'x-forwarded-for': `192.0.2.${i + 1}` } }))
            .statusCode,
        ).toBe(401);
      expect(
        (await guess(direct.app, { ip, headers: { ...svcGuess(), 'x-forwarded-for': '192.0.2.250' } })).statusCode,
      ).toBe(429);
    });

    it('a hop count (TRUST_PROXY=1) takes the address the one proxy in front saw', async () => {
      const hops = await buildTestApp({ pool: db.pool, clock, config: testConfig({ TRUST_PROXY: '1' }) });
      try {
        const via = (xff: string) =>
          guess(hops.app, { ip: nextIp(), headers: { ...svcGuess(), 'x-forwarded-for': xff } });
        for (let i = 0; i < BUDGET; i++) expect((await via(`192.0.2.${i}, 198.51.100.30`)).statusCode).toBe(401);
        expect((await via('192.0.2.250, 198.51.100.30')).statusCode).toBe(429);
        expect((await via('198.51.100.31')).statusCode).toBe(401);
      } finally {
        await hops.close();
      }
    });

    it('the per-address login limit is per client behind the proxy, not one global limit', async () => {
      let n = 0;
      const login = (client: string) =>
        proxied.app.inject({
          method: 'POST',
          url: '/v1/admin/login',
          remoteAddress: PROXY,
          headers: { 'content-type': 'application/json', 'x-forwarded-for': client },
          payload: { email: `nobody-${client}-${n++}@example.test`, password: 'not a password' },
        });
      for (let i = 0; i < LOGIN_RATE_LIMIT.max; i++) expect((await login('198.51.100.20')).statusCode).toBe(401);
      expect((await login('198.51.100.20')).statusCode).toBe(429);
      expect((await login('198.51.100.21')).statusCode).toBe(401);
    });
  });
});

describe('a request waiting for a place whose client goes away', () => {
  it('leaves the queue; one that stays is refused, unlooked, when the lookup ahead of it fails', async () => {
    // One place; the lookup holding it is stalled until released, so the next request must wait.
    const budget = createFailureBudget({ max: 1, windowMs: 60_000, now: Date.now });
    let release = () => {};
    const stalled = new Promise<void>((r) => (release = r));
    let looked = 0;
    const app = Fastify();
    installErrorHandling(app);
    installAccessControl(
      app,
      async () => {
        looked++;
        await stalled;
        return null;
      },
      {
        presented: (req) => req.headers.authorization,
        keyOf: (req) => req.ip,
        budget,
        proven: createProvenCredentials({ ttlMs: 60_000, now: Date.now }),
      },
    );
    app.get('/x', { config: { access: ['agent'] } }, () => 'unreachable');
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(ok()).toBe(true);
    };
    const send = () => {
      const req = request({ host: '127.0.0.1', port, path: '/x', headers: { authorization: 'Bearer guess' } });
      const answered = new Promise<number>((resolve) => {
        req.on('response', (res) => resolve(res.resume().statusCode!));
        req.on('error', () => resolve(0));
      });
      req.end();
      return { req, answered };
    };
    try {
      const holder = send();
      await until(() => looked === 1);
      const leaver = send();
      await until(() => budget.waiting('127.0.0.1') === 1);
      leaver.req.destroy();
      await until(() => budget.waiting() === 0);
      expect(await leaver.answered).toBe(0);
      const stayer = send();
      await until(() => budget.waiting('127.0.0.1') === 1);
      release(); // the holder fails: one failure fills the budget of 1, and the waiter is refused
      expect(await holder.answered).toBe(401);
      expect(await stayer.answered).toBe(429);
      expect(budget.waiting()).toBe(0);
      expect(looked).toBe(1);
    } finally {
      release();
      await app.close();
    }
  });
});
