import { randomBytes } from 'node:crypto';
import { temporal } from '@temporalio/proto';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { createLogger } from '../../api/logger';
import { systemClock } from '../../protocol';
import { createTemporal } from '../../services/temporal';
import { licenseWorkflowId } from '../../workflows/license-contract';
import { createWorker } from '../../worker';
import { asAgent, createAgentWithLicense, createStaff, type Staff } from '../support/agent-server-fixtures';
import { buildTestApp, createTestServices, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import { createTestCustomer, createTestKeysDir } from '../support/license-helpers';
import { createLogCapture } from '../support/log-capture';
import { connectTestTemporal, runWorkerInBackground, type TestTemporal } from '../support/temporal';

/**
 * A hostile customer and admin plant credentials everywhere the control plane takes text: task
 * payloads and http.get headers, license reasons, activation token labels, names, login emails
 * and passwords, query strings and request headers. Then every log line the API and the worker
 * wrote, every audit row, the full history of every lifecycle involved and every API answer are
 * searched for the planted values: none may appear. (The agent's own logs and journal are
 * searched the same way by agent-process.test.ts.)
 */
describe('planted secrets reach no log, audit row, workflow history or answer', () => {
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let stopWorker: () => Promise<void>;
  let built: Awaited<ReturnType<typeof buildTestApp>>;
  let staff: Staff;
  const workerLogs = createLogCapture();
  /** Every answer a caller got (the agent's own task lease aside: it must carry the headers). */
  const answers: Array<{ what: string; res: LightMyRequestResponse }> = [];
  const licenseIds: string[] = [];

  const planted = Object.fromEntries(
    [
      'taskKv',
      'taskUrl',
      'taskJson',
      'headerPlain',
      'headerBearer',
      'getUrlPassword',
      'getUrlQuery',
      'suspendReason',
      'revokeReason',
      'label',
      'customerName',
      'serviceAccountName',
      'displayName',
      'loginEmail',
      'loginPassword',
      'query',
      'queryAuth',
      'requestApiKey',
      'requestBearer',
      'requestCookie',
      'requestCustomHeader',
      'handMadeReason',
    ].map((k) => [k, `Zq${k}${randomBytes(6).toString('hex')}`]),
  ) as Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase('planted');
    t = await connectTestTemporal('planted');
    keys = createTestKeysDir();
    const config = testConfig({
      TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
      TEMPORAL_TASK_QUEUE: t.taskQueue,
      AGENTINA_KEYS_DIR: keys.dir,
      LOG_LEVEL: 'debug',
    });
    // The worker logs into memory too, at debug, so everything it says is searched.
    const worker = await createWorker({
      connection: t.nativeConnection,
      namespace: t.namespace,
      taskQueue: t.taskQueue,
      services: createTestServices({
        config,
        pool: db.pool,
        temporal: createTemporal(config),
        clock: systemClock,
        logger: createLogger('debug', workerLogs.stream),
      }),
      workflowBundle: t.workflowBundle,
    });
    stopWorker = runWorkerInBackground(worker);
    built = await buildTestApp({ pool: db.pool, config });
    staff = createStaff(db.pool, systemClock);
  });

  afterAll(async () => {
    await built?.close();
    await stopWorker?.();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  async function call(what: string, opts: InjectOptions): Promise<LightMyRequestResponse> {
    const res = await built.app.inject(opts);
    answers.push({ what, res });
    return res;
  }
  const asAdmin = async (what: string, method: 'GET' | 'POST', url: string, payload?: object) =>
    call(what, { method, url, headers: await staff.admin(), ...(payload ? { payload } : { payload: {} }) });

  it('plants every kind as a hostile customer and admin would', async () => {
    // Names.
    const customer = await asAdmin('create customer', 'POST', '/v1/admin/customers', {
      name: `Acme "secret":"${planted.customerName}"`,
    });
    expect(customer.statusCode).toBe(201);
    const customerId = customer.json().id ?? customer.json().customer?.id;
    expect(
      (
        await asAdmin('create service account', 'POST', '/v1/admin/service-accounts', {
          name: `ci apikey=${planted.serviceAccountName}`,
          scopes: ['licenses:read'],
        })
      ).statusCode,
    ).toBe(201);
    expect(
      (
        await asAdmin('create user', 'POST', `/v1/admin/customers/${customerId}/users`, {
          email: `pat-${randomBytes(3).toString('hex')}@example.test`,
          displayName: `Pat pwd=${planted.displayName}`,
        })
      ).statusCode,
    ).toBe(201);

    // A license with a lifecycle: reasons, a label, and an Update made by hand through Temporal.
    const licCustomer = await createTestCustomer(db.pool);
    const lic = await asAdmin('create license', 'POST', '/v1/admin/licenses', {
      customerId: licCustomer,
      plan: 'pro',
      maxAgents: 2,
      term: { days: 30 },
    });
    expect(lic.statusCode).toBe(201);
    const licenseId = lic.json().license.id as string;
    licenseIds.push(licenseId);
    expect(
      (
        await asAdmin('activation token', 'POST', '/v1/admin/activation-tokens', {
          licenseId,
          label: `rack 4 token: ${planted.label}`,
        })
      ).statusCode,
    ).toBe(201);
    // An Update sent by hand through Temporal (refused: no origin proof), its reason audited scrubbed.
    await expect(
      t.client.workflow.getHandle(licenseWorkflowId(licenseId)).executeUpdate('suspend', {
        args: [{ actor: { kind: 'admin', id: 'adm_x' }, reason: `password=${planted.handMadeReason}` }],
      }),
    ).rejects.toThrow();
    expect(
      (
        await asAdmin('suspend', 'POST', `/v1/admin/licenses/${licenseId}/suspend`, {
          reason: `card declined; password=${planted.suspendReason}`,
        })
      ).statusCode,
    ).toBe(200);

    expect((await asAdmin('resume', 'POST', `/v1/admin/licenses/${licenseId}/resume`)).statusCode).toBe(200);
    expect(
      (
        await asAdmin('revoke', 'POST', `/v1/admin/licenses/${licenseId}/revoke`, {
          reason: `moved; see redis://:${planted.revokeReason}@cache:6379`,
        })
      ).statusCode,
    ).toBe(200);

    // Tasks: secrets in an echo payload and in an http.get URL and headers.
    const agent = await createAgentWithLicense(db.pool, new Date());
    const echo = await asAdmin('echo task', 'POST', '/v1/admin/tasks', {
      agentId: agent.agentId,
      kind: 'echo',
      payload: {
        note: `deploy with password=${planted.taskKv}`,
        dsn: `postgres://app:${planted.taskUrl}@db:5432/app`,
        blob: `{"api_key":"${planted.taskJson}"}`,
      },
    });
    expect(echo.statusCode).toBe(201);
    const get = await call('http.get task (portal)', {
      method: 'POST',
      url: '/v1/portal/tasks',
      headers: await staff.customer(agent.customerId),
      payload: {
        agentId: agent.agentId,
        kind: 'http.get',
        payload: {
          url: `https://svc:${planted.getUrlPassword}@example.test/data?access_token=${planted.getUrlQuery}`,
          headers: { 'X-Custom': planted.headerPlain, Authorization: `Bearer ${planted.headerBearer}` },
        },
      },
    });
    expect(get.statusCode).toBe(201);
    // The agent leases both; it alone gets the header values (not recorded as an answer).
    const leased = [
      (await built.app.inject({ method: 'GET', url: '/v1/agent/tasks/next', headers: asAgent(agent) })).json().task,
      (await built.app.inject({ method: 'GET', url: '/v1/agent/tasks/next', headers: asAgent(agent) })).json().task,
    ];
    expect(JSON.stringify(leased)).toContain(planted.headerPlain);
    // The echo comes back with the payload in it, and the http.get target echoed its headers.
    await call('echo result', {
      method: 'POST',
      url: `/v1/agent/tasks/${echo.json().id}/result`,
      headers: asAgent(agent),
      payload: { outcome: 'succeeded', result: { echo: leased[0].payload } },
    });
    await call('http.get result', {
      method: 'POST',
      url: `/v1/agent/tasks/${get.json().id}/result`,
      headers: asAgent(agent),
      payload: {
        outcome: 'failed',
        error: `target said: bad header X-Custom=${planted.headerPlain} for Bearer ${planted.headerBearer}`,
      },
    });

    // Login with a secret-looking email and a password; query strings; request headers.
    for (const scope of ['admin', 'portal'])
      await call(`${scope} login`, {
        method: 'POST',
        url: `/v1/${scope}/login`,
        headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' },
        payload: { email: `password=${planted.loginEmail}@example.test`, password: planted.loginPassword },
      });
    await call('query', {
      method: 'GET',
      url: `/v1/admin/licenses?token=${planted.query}`,
      headers: await staff.admin(),
    });
    await call('query 2', {
      method: 'GET',
      url: `/v1/admin/tasks?limit=5&authorization=${planted.queryAuth}`,
      headers: await staff.admin(),
    });
    await call('query anonymous', { method: 'GET', url: `/v1/portal/licenses?password=${planted.query}` });
    await call('headers', {
      method: 'GET',
      url: '/v1/admin/me',
      headers: {
        'x-api-key': planted.requestApiKey,
        authorization: `Bearer ${planted.requestBearer}`,
        cookie: `__Host-agentina_admin=${planted.requestCookie}`,
        'x-forwarded-for': `password=${planted.requestCustomHeader}`,
      },
    });

    // Everything an admin or customer can read back afterwards.
    for (const url of [
      '/v1/admin/licenses',
      `/v1/admin/licenses/${licenseId}`,
      '/v1/admin/tasks',
      `/v1/admin/tasks/${echo.json().id}`,
      `/v1/admin/tasks/${get.json().id}`,
      '/v1/admin/customers',
      `/v1/admin/customers/${customerId}`,
      `/v1/admin/customers/${customerId}/users`,
      '/v1/admin/service-accounts',
      '/v1/admin/activation-tokens',
      '/v1/admin/audit?limit=200',
      '/v1/admin/agents',
    ])
      expect([url, (await asAdmin(url, 'GET', url)).statusCode]).toEqual([url, 200]);
    const portal = await staff.customer(agent.customerId);
    for (const url of ['/v1/portal/tasks', `/v1/portal/tasks/${get.json().id}`])
      expect([url, (await call(url, { method: 'GET', url, headers: portal })).statusCode]).toEqual([url, 200]);
  });

  const found = (text: string, except: string[] = []) =>
    Object.entries(planted)
      .filter(([k, v]) => !except.includes(k) && text.includes(v))
      .map(([k]) => k);

  it('no API answer carries a planted value', () => {
    expect(answers.length).toBeGreaterThan(25);
    const leaks = answers
      .map((a) => ({ what: a.what, leaked: found(`${JSON.stringify(a.res.headers)}\n${a.res.body}`) }))
      .filter((a) => a.leaked.length);
    expect(leaks).toEqual([]);
  });

  it('no log line of the API or the worker carries one', () => {
    expect(built.logs.lines.length).toBeGreaterThan(50);
    const leaks = [...built.logs.lines, ...workerLogs.lines].filter((l) => found(l).length);
    expect(leaks).toEqual([]);
  });

  it('no audit row carries one, and the Update made by hand is there, scrubbed', async () => {
    const { rows } = await db.adminPool.query<{ action: string; row: string }>(
      'SELECT action, row_to_json(e)::text AS row FROM agentina.audit_events e ORDER BY seq',
    );
    expect(rows.map((r) => r.action)).toEqual(
      expect.arrayContaining([
        'customer.created',
        'service_account.created',
        'customer_user.created',
        'license.suspended',
        'license.update_refused',
        'license.revoked',
        'activation_token.created',
        'task.created',
        'task.failed',
      ]),
    );
    expect(rows.filter((r) => found(r.row).length).map((r) => [r.action, found(r.row)])).toEqual([]);
  });

  it('no lifecycle history carries one (but the one an attacker sent to Temporal by hand)', async () => {
    expect(licenseIds).toHaveLength(1);
    for (const id of licenseIds) {
      const history = await t.client.workflow.getHandle(licenseWorkflowId(id)).fetchHistory();
      // Payload bytes as base64 (protobuf's JSON form), then decoded.
      const raw = JSON.stringify(
        temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.fromObject(history), {
          bytes: String,
          longs: String,
          enums: String,
        }),
      );
      const decoded = [...raw.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)]
        .map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'))
        .join('\n');
      // The search works: what the attacker sent through Temporal itself is in Temporal's history.
      expect(decoded).toContain(planted.handMadeReason);
      expect(found(`${raw}\n${decoded}`, ['handMadeReason'])).toEqual([]);
    }
  });

  it('stores http.get header values sealed: a database dump does not carry them either', async () => {
    const { rows } = await db.adminPool.query<{ p: string }>('SELECT payload::text AS p FROM agentina.tasks');
    const text = rows.map((r) => r.p).join('\n');
    expect(text).not.toContain(planted.headerPlain);
    expect(text).not.toContain(planted.headerBearer);
  });
});
