import { temporal } from '@temporalio/proto';
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { UNFINISHED_ATTEMPT } from '../../db/webhooks-repo';
import { systemClock, type Actor, type WebhookDeliveryView } from '../../protocol';
import type { Services } from '../../services';
import { createAllowList, isPublicAddress } from '../../services/webhooks/outbound-address';
import { sendWebhook } from '../../services/webhooks/webhook-sender';
import { buildTestApp, createTestServices, testConfig } from '../support/app';
import { createStaff, type Staff } from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import { seedCustomerUser, mintSession, SAME_ORIGIN, seedServiceAccount } from '../support/identity';
import { createTestCustomer, createTestKeysDir, eventually } from '../support/license-helpers';
import { connectTestTemporal, runTestWorker, testTemporalDeps, type TestTemporal } from '../support/temporal';

/** A try whose outcome is recorded (a try in flight is logged as unfinished first). */
const finishedTry = (a: { error: string | null } | undefined): boolean =>
  a !== undefined && a.error !== UNFINISHED_ATTEMPT;

type Received = { path: string; headers: Record<string, string>; body: string };

/** A receiver on loopback whose paths behave as a test needs. */
async function startReceiver() {
  const received: Received[] = [];
  const flakyTries = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  let port = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      const p = req.url ?? '/';
      received.push({ path: p, headers, body });
      if (p.startsWith('/ok')) return res.writeHead(200).end('thanks');
      if (p === '/flaky') {
        const n = (flakyTries.get(headers['webhook-id']!) ?? 0) + 1;
        flakyTries.set(headers['webhook-id']!, n);
        return n <= 2 ? res.writeHead(503).end('busy, try later') : res.writeHead(204).end();
      }
      if (p === '/redirect') return res.writeHead(302, { location: `http://127.0.0.1:${port}/ok-redirected` }).end();
      if (p === '/hang') return; // never answers
      if (p === '/endless') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = 'x'.repeat(16 * 1024);
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        return pump();
      }
      return res.writeHead(500).end('no');
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  return {
    url: (p: string) => `http://127.0.0.1:${port}${p}`,
    received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Verifies a delivery with the Standard Webhooks reference library (Python, from PyPI). */
async function verifyWithStandardWebhooks(secret: string, r: Received): Promise<{ ok: boolean; payload?: unknown }> {
  const script = path.join(__dirname, '..', 'support', 'python', 'standardwebhooks_verify.py');
  const child = promisify(execFile)('python3', [script], {
    env: { ...process.env, PYTHONPATH: testEnv('AGENTINA_TEST_PYTHON_WEBHOOKS') },
    timeout: 30_000,
  });
  child.child.stdin!.end(JSON.stringify({ secret, headers: r.headers, body: r.body }));
  const { stdout } = await child;
  return JSON.parse(stdout.trim().split('\n').pop()!) as { ok: boolean; payload?: unknown };
}

describe('webhooks', () => {
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let stopWorker: () => Promise<void>;
  let stopDispatcher: () => Promise<void>;
  let built: Awaited<ReturnType<typeof buildTestApp>>;
  let services: Services;
  let staff: Staff;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let customerId: string;
  const admin: Actor = { kind: 'admin', id: 'adm_webhooktester000000' };
  const env = { WEBHOOK_ALLOW_HOSTS: '127.0.0.1' };
  const secrets: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('webhooks');
    keys = createTestKeysDir();
    t = await connectTestTemporal('webhooks');
    receiver = await startReceiver();
    const webhookSendLimits = { timeoutMs: 1500, maxResponseBytes: 1024 };
    stopWorker = await runTestWorker(t, {
      pool: db.pool,
      clock: systemClock,
      keysDir: keys.dir,
      env,
      webhookSendLimits,
    });
    const config = testConfig({ AGENTINA_KEYS_DIR: keys.dir, ...env });
    const temporal = testTemporalDeps(t.client, t.taskQueue);
    built = await buildTestApp({ pool: db.pool, temporal, config });
    services = createTestServices({ pool: db.pool, temporal, clock: systemClock, config });
    stopDispatcher = services.webhooks.startDispatcher(200);
    staff = createStaff(db.pool, systemClock);
    customerId = await createTestCustomer(db.pool);
  });

  afterAll(async () => {
    await stopDispatcher?.();
    await built?.close();
    await stopWorker?.();
    await services?.close();
    await receiver?.close();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  async function createEndpoint(p: string, events: string[]) {
    const res = await built.app.inject({
      method: 'POST',
      url: '/v1/admin/webhooks',
      headers: await staff.admin(),
      payload: { url: receiver.url(p), description: `receiver ${p}`, events },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json<{ endpoint: { id: string }; secret: string }>();
    secrets.push(body.secret);
    return body;
  }

  const deliveries = async (id: string) =>
    (await built.app.inject({ url: `/v1/admin/webhooks/${id}/deliveries`, headers: await staff.admin() })).json<{
      items: WebhookDeliveryView[];
    }>().items;

  async function newLicense(): Promise<string> {
    const { license } = await services.licenses.createLicense(admin, {
      customerId,
      plan: 'standard',
      features: {},
      maxAgents: 1,
      graceDays: 0,
      trialEndState: 'expired',
      term: { days: 60 },
    });
    return license.id;
  }

  it('delivers a license event signed per Standard Webhooks: the reference library verifies it', async () => {
    const { endpoint, secret } = await createEndpoint('/ok-first', ['license.created', 'license.revoked']);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    const licenseId = await newLicense();
    const r = await eventually(
      async () => receiver.received.find((x) => x.path === '/ok-first' && x.body.includes(licenseId)),
      (x) => x !== undefined,
    );
    const verified = await verifyWithStandardWebhooks(secret, r!);
    expect(verified.ok).toBe(true);
    expect(verified.payload).toMatchObject({
      type: 'license.created',
      data: { version: 1, licenseId, customerId, subject: { kind: 'license', id: licenseId }, actor: admin },
    });
    const data = (verified.payload as { data: { eventId: string; sequence: number } }).data;
    expect(r!.headers['webhook-id']).toBe(data.eventId);
    expect(data.eventId).toBe(`msg_${data.sequence}`);
    // Altered body, another secret: the reference library refuses.
    expect((await verifyWithStandardWebhooks(secret, { ...r!, body: r!.body.replace('standard', 'premium') })).ok).toBe(
      false,
    );
    expect((await verifyWithStandardWebhooks(`whsec_${Buffer.alloc(32, 7).toString('base64')}`, r!)).ok).toBe(false);

    // The revocation follows, in ledger order; the attempt log says what happened.
    await services.licenses.revokeLicense(licenseId, admin, 'contract ended');
    await eventually(
      async () => deliveries(endpoint.id),
      (items) => items.length === 2 && items.every((d) => d.state === 'succeeded'),
    );
    const items = await deliveries(endpoint.id);
    expect(items.map((d) => d.type)).toEqual(['license.revoked', 'license.created']);
    expect(items[0]!.sequence).toBeGreaterThan(items[1]!.sequence);
    expect(items[0]!.attempts).toEqual([
      expect.objectContaining({ attempt: 1, ok: true, statusCode: 200, responseExcerpt: 'thanks', error: null }),
    ]);
  });

  it('a receiver failing twice then answering gets one success after three attempts, all with one webhook-id', async () => {
    const { endpoint, secret } = await createEndpoint('/flaky', ['license.suspended']);
    const licenseId = await newLicense();
    await services.licenses.suspendLicense(licenseId, admin, 'unpaid');
    const [d] = await eventually(
      async () => deliveries(endpoint.id),
      (items) => items[0]?.state === 'succeeded',
      20_000,
    );
    expect(d!.attempts.map((a) => [a.statusCode, a.ok])).toEqual([
      [503, false],
      [503, false],
      [204, true],
    ]);
    expect(d!.attempts[0]!.responseExcerpt).toBe('busy, try later');
    const got = receiver.received.filter((x) => x.path === '/flaky');
    expect(got).toHaveLength(3);
    expect(new Set(got.map((x) => x.headers['webhook-id']))).toEqual(new Set([d!.eventId]));
    for (const x of got) expect((await verifyWithStandardWebhooks(secret, x)).ok).toBe(true);

    // Redelivered by hand: the same webhook-id again, so the receiver can tell it is a repeat.
    const res = await built.app.inject({
      method: 'POST',
      url: `/v1/admin/webhooks/${endpoint.id}/deliveries/${d!.eventId}/redeliver`,
      headers: await staff.admin(),
      payload: {},
    });
    expect(res.statusCode).toBe(202);
    await eventually(
      async () => receiver.received.filter((x) => x.path === '/flaky').length,
      (n) => n === 4,
    );
    expect(receiver.received.filter((x) => x.path === '/flaky').pop()!.headers['webhook-id']).toBe(d!.eventId);
  });

  it('rotation: during the overlap both secrets sign, and either verifies', async () => {
    const { endpoint, secret: before } = await createEndpoint('/ok-rotation', ['license.suspended']);
    const res = await built.app.inject({
      method: 'POST',
      url: `/v1/admin/webhooks/${endpoint.id}/rotate-secret`,
      headers: await staff.admin(),
      payload: { overlapSeconds: 3600 },
    });
    expect(res.statusCode).toBe(200);
    const { secret: after, endpoint: rotated } = res.json<{
      secret: string;
      endpoint: { previousSecretExpiresAt: string };
    }>();
    secrets.push(after);
    expect(after).not.toBe(before);
    expect(Date.parse(rotated.previousSecretExpiresAt)).toBeGreaterThan(Date.now());
    const licenseId = await newLicense();
    await services.licenses.suspendLicense(licenseId, admin, 'rotation test');
    const r = await eventually(
      async () => receiver.received.find((x) => x.path === '/ok-rotation' && x.body.includes(licenseId)),
      (x) => x !== undefined,
    );
    expect(r!.headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect((await verifyWithStandardWebhooks(after, r!)).ok).toBe(true);
    expect((await verifyWithStandardWebhooks(before, r!)).ok).toBe(true);
  });

  it('a receiver that never answers, streams without end or redirects is cut off and logged', async () => {
    const hang = await createEndpoint('/hang', ['license.resumed']);
    const endless = await createEndpoint('/endless', ['license.resumed']);
    const redirect = await createEndpoint('/redirect', ['license.resumed']);
    const licenseId = await newLicense();
    await services.licenses.suspendLicense(licenseId, admin, 'x');
    await services.licenses.resumeLicense(licenseId, admin);

    const [e] = await eventually(
      async () => deliveries(endless.endpoint.id),
      (items) => items[0]?.state === 'succeeded',
    );
    // A 200 whose body never ends: the first KiB is read, the rest never is.
    expect(e!.attempts[0]).toMatchObject({ ok: true, statusCode: 200 });
    expect(e!.attempts[0]!.responseExcerpt!.length).toBeLessThanOrEqual(1024);
    expect(e!.attempts[0]!.latencyMs).toBeLessThan(1500);

    const [h] = await eventually(
      async () => deliveries(hang.endpoint.id),
      (items) => finishedTry(items[0]?.attempts[0]),
    );
    expect(h!.attempts[0]).toMatchObject({ ok: false, statusCode: null, error: 'timed out after 1500 ms' });
    expect(h!.attempts[0]!.latencyMs).toBeLessThan(3000);

    const [rd] = await eventually(
      async () => deliveries(redirect.endpoint.id),
      (items) => finishedTry(items[0]?.attempts[0]),
    );
    expect(rd!.attempts[0]).toMatchObject({ ok: false, statusCode: 302, error: 'redirect not followed' });
    // The redirect's target was never called for this event.
    expect(receiver.received.filter((x) => x.path === '/ok-redirected')).toHaveLength(0);

    // Disabling an endpoint stops its retries: the delivery ends failed, and the endpoint is not auto-disabled again.
    for (const id of [hang.endpoint.id, redirect.endpoint.id]) {
      const res = await built.app.inject({
        method: 'PATCH',
        url: `/v1/admin/webhooks/${id}`,
        headers: await staff.admin(),
        payload: { enabled: false },
      });
      expect(res.json()).toMatchObject({ enabled: false, disabledReason: 'disabled by an admin' });
      await eventually(
        async () => deliveries(id),
        (items) => items[0]?.state === 'failed',
        20_000,
      );
    }
  });

  it('SSRF: loopback, link-local, metadata, private names and IPv6 forms are refused before any connection', async () => {
    let connections = 0;
    const trap = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r));
    const port = (trap.address() as AddressInfo).port;
    const none = createAllowList([]);
    const targets = [
      `https://127.0.0.1:${port}/`,
      `https://localhost:${port}/`, // a name resolving to loopback
      `https://[::1]:${port}/`,
      `https://[::ffff:127.0.0.1]:${port}/`,
      `https://2130706433:${port}/`, // 127.0.0.1 as one number
      `https://0x7f.1:${port}/`,
      'https://169.254.169.254/latest/meta-data/',
      'https://[fd00::1]/',
      'https://10.0.0.1/',
      'https://192.168.1.1/',
      'https://[64:ff9b::a9fe:a9fe]/', // NAT64 of 169.254.169.254
    ];
    for (const url of targets) {
      const r = await sendWebhook({ url, headers: {}, body: '{}', allow: none });
      expect([url, r.ok, r.error]).toEqual([url, false, expect.stringMatching(/^refused: .*non-public address/)]);
    }
    // http is refused outright for hosts not on the allow-list; credentials in the URL too.
    expect((await sendWebhook({ url: 'http://example.com/', headers: {}, body: '', allow: none })).error).toBe(
      'refused: receivers must use https',
    );
    // A name resolving to a public address and a private one: refused (it also points inward).
    const mixed = async () => [
      { address: '8.8.8.8', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ];
    expect(
      (await sendWebhook({ url: 'https://both.example/', headers: {}, body: '', allow: none, resolve: mixed })).error,
    ).toMatch(/non-public address \(127\.0\.0\.1\)/);
    // DNS rebinding: the name is resolved once; the connection goes to the address checked, never
    // to a second answer (here: loopback, where the trap listens).
    let lookups = 0;
    const rebinding = async () => {
      lookups++;
      return lookups === 1 ? [{ address: '192.0.2.1', family: 4 }] : [{ address: '127.0.0.1', family: 4 }];
    };
    const publicNet = createAllowList(['192.0.2.1']); // stands in for a public address in a sandbox
    const r = await sendWebhook({
      url: `https://rebind.example:${port}/`,
      headers: {},
      body: '',
      allow: publicNet,
      resolve: rebinding,
      limits: { timeoutMs: 500, maxResponseBytes: 1024 },
    });
    expect(r.ok).toBe(false);
    expect(lookups).toBe(1);
    expect(connections).toBe(0);
    await new Promise<void>((res) => trap.close(() => res()));
    expect(['8.8.8.8', '2606:4700::1111'].every(isPublicAddress)).toBe(true);
  });

  it('an endpoint pointing inward is never called by the delivery workflow unless allowed', async () => {
    const res = await built.app.inject({
      method: 'POST',
      url: '/v1/admin/webhooks',
      headers: await staff.admin(),
      payload: { url: 'https://169.254.169.254/latest/meta-data/', events: ['license.suspended'] },
    });
    expect(res.statusCode).toBe(201);
    const { endpoint, secret } = res.json<{ endpoint: { id: string }; secret: string }>();
    secrets.push(secret);
    const licenseId = await newLicense();
    await services.licenses.suspendLicense(licenseId, admin, 'ssrf');
    const [d] = await eventually(
      async () => deliveries(endpoint.id),
      (items) => finishedTry(items[0]?.attempts[0]),
    );
    expect(d!.attempts[0]).toMatchObject({ ok: false, statusCode: null });
    expect(d!.attempts[0]!.error).toMatch(/non-public address \(169\.254\.169\.254\)/);
    await built.app.inject({
      method: 'PATCH',
      url: `/v1/admin/webhooks/${endpoint.id}`,
      headers: await staff.admin(),
      payload: { enabled: false },
    });
  });

  it('refuses bad endpoints with a 4xx: http to a host not allowed, credentials, unknown events', async () => {
    const headers = await staff.admin();
    for (const payload of [
      { url: 'http://receiver.example/hook', events: ['license.revoked'] },
      { url: 'https://user:pw@receiver.example/hook', events: ['license.revoked'] },
      { url: 'not a url', events: ['license.revoked'] },
      { url: 'https://receiver.example/hook', events: ['license.update_refused'] },
      { url: 'https://receiver.example/hook', events: [] },
    ]) {
      const res = await built.app.inject({ method: 'POST', url: '/v1/admin/webhooks', headers, payload });
      expect([payload, res.statusCode]).toEqual([payload, 400]);
    }
  });

  it('a customer or a service token cannot manage webhooks', async () => {
    const user = await seedCustomerUser(db.pool, customerId, { cheap: true });
    const { cookie } = await mintSession(db.pool, 'customer', { id: user.id, customerId });
    const svc = await seedServiceAccount(db.pool);
    const payload = { url: 'https://attacker.example/hook', events: ['license.revoked'] };
    for (const headers of [
      { cookie, ...SAME_ORIGIN },
      { authorization: `Bearer ${svc.token}`, ...SAME_ORIGIN },
    ]) {
      for (const [method, url] of [
        ['POST', '/v1/admin/webhooks'],
        ['GET', '/v1/admin/webhooks'],
      ] as const) {
        const res = await built.app.inject({ method, url, headers, ...(method === 'POST' ? { payload } : {}) });
        expect(res.statusCode).toBe(403);
      }
    }
    const { rows } = await db.adminPool.query(
      "SELECT count(*)::int AS n FROM agentina.webhook_endpoints WHERE url LIKE 'https://attacker%'",
    );
    expect(rows[0].n).toBe(0);
  });

  it('no signing secret in the audit ledger, the logs, the database in clear or any workflow history', async () => {
    expect(secrets.length).toBeGreaterThan(3);
    const needles = secrets.flatMap((s) => [s, s.slice('whsec_'.length)]);
    const audit = JSON.stringify((await db.adminPool.query('SELECT * FROM agentina.audit_events')).rows);
    const endpoints = JSON.stringify((await db.adminPool.query('SELECT * FROM agentina.webhook_endpoints')).rows);
    const logs = built.logs.text();
    const histories: string[] = [];
    for await (const wf of t.client.workflow.list({ query: `TaskQueue = '${t.taskQueue}'` })) {
      if (wf.type !== 'webhookDelivery') continue;
      const history = await t.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      // Payload bytes as base64 (protobuf's JSON form), then decoded: the search sees what a reader of history sees.
      const raw = JSON.stringify(
        temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.fromObject(history), {
          bytes: String,
          longs: String,
          enums: String,
        }),
      );
      const decoded = [...raw.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)].map((m) =>
        Buffer.from(m[1]!, 'base64').toString('utf8'),
      );
      histories.push(`${raw}\n${decoded.join('\n')}`);
    }
    expect(histories.length).toBeGreaterThan(3);
    expect(audit).toContain('webhook_endpoint.secret_rotated');
    for (const n of needles) {
      expect(audit).not.toContain(n);
      expect(endpoints).not.toContain(n);
      expect(logs).not.toContain(n);
      for (const h of histories) expect(h).not.toContain(n);
    }
    // The search works (the input's ids are there); the payload is not: only the two ids travel.
    for (const h of histories) {
      expect(h).toContain('"eventSeq"');
      expect(h).not.toContain('"licenseId"');
    }
  });
});
