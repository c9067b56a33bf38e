import http from 'node:http';
import { temporal } from '@temporalio/proto';
import type { AddressInfo } from 'node:net';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createFixedClock, systemClock, type Actor } from '../../protocol';
import type { LicenseService } from '../../services/licenses/license-service';
import { DAY_MS } from '../../workflows/license-rules';
import { EXPIRY_NOTICE_PATCH } from '../../workflows/license-lifecycle';
import { licenseWorkflowId } from '../../workflows/license-contract';
import { webhookEventId, webhookWorkflowId } from '../../workflows/webhook-delivery';
import { createTestServices, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import {
  createTestCustomer,
  createTestKeysDir,
  startTimeSkippingServer,
  eventually,
  testLicenseService,
} from '../support/license-helpers';
import { runSkippedTimeWorker } from '../support/skipped-time-worker';
import { testTemporalDeps } from '../support/temporal';

/**
 * On the time-skipping server: `license.expiring_soon` from the lifecycle's own timers (30, 7 and
 * 1 days before expiry, re-armed by a renewal), and an endpoint that fails for 3 days disabled.
 */
describe('webhooks on the time-skipping server', () => {
  const admin: Actor = { kind: 'admin', id: 'adm_webhooktimetester00' };
  const taskQueue = 'webhooks-time';
  const env = { WEBHOOK_ALLOW_HOSTS: '127.0.0.1' };
  let tenv: TestWorkflowEnvironment;
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let stopWorker: () => Promise<void>;
  let customerId: string;
  let failures = 0;
  let receiver: http.Server;
  let receiverUrl: string;

  beforeAll(async () => {
    tenv = await startTimeSkippingServer();
    db = await createTestDatabase('webhookstime');
    keys = createTestKeysDir();
    customerId = await createTestCustomer(db.pool);
    receiver = http.createServer((req, res) => {
      req.resume();
      failures++;
      res.writeHead(500).end('down for maintenance');
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    stopWorker = await runSkippedTimeWorker({ server: tenv, pool: db.pool, keysDir: keys.dir, taskQueue, env });
  });

  afterAll(async () => {
    await stopWorker?.();
    await tenv?.teardown();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    await db?.drop();
    keys?.remove();
  });

  /** A license service on the test server's (skipped) time that asks for the notices. */
  async function service(): Promise<LicenseService> {
    return testLicenseService({
      pool: db.pool,
      temporal: { client: tenv.client, taskQueue },
      clock: createFixedClock(new Date(await tenv.currentTimeMs())),
      keysDir: keys.dir,
      expiryNoticeDays: [30, 7, 1],
    });
  }

  /** Services on the test server (their webhook dispatcher starts workflows there). */
  const servicesOnTestServer = () =>
    createTestServices({
      pool: db.pool,
      temporal: testTemporalDeps(tenv.client, taskQueue),
      clock: systemClock,
      config: testConfig({ AGENTINA_KEYS_DIR: keys.dir, ...env }),
    });

  /** A paid license of `days` on the server's time. */
  async function licenseFor(svc: LicenseService, days: number) {
    const base = { plan: 'pro', features: {}, maxAgents: 1, graceDays: 0, trialEndState: 'expired' as const };
    return (await svc.createLicense(admin, { ...base, customerId, term: { days } })).license;
  }

  const notices = async (licenseId: string) =>
    (
      await db.pool.query<{
        data: { daysBefore: number; expiresAt: string };
        actor_kind: string;
        idempotency_key: string;
      }>(
        "SELECT data, actor_kind, idempotency_key FROM audit_events WHERE action = 'license.expiring_soon' AND subject_id = $1 ORDER BY seq",
        [licenseId],
      )
    ).rows;

  it('announces expiry 30, 7 and 1 days ahead from the lifecycle timers, and re-arms on renewal', async () => {
    // An endpoint subscribed to the notices: each becomes a delivery through the audit fan-out.
    const webhooks = servicesOnTestServer();
    const { endpoint } = await webhooks.webhooks.createEndpoint(admin, {
      url: 'https://receiver.example/hook',
      events: ['license.expiring_soon'],
      enabled: true,
    });
    const svc = await service();
    const license = await licenseFor(svc, 40);
    const firstExpiry = license.expiresAt;
    await tenv.sleep(9 * DAY_MS);
    expect(await notices(license.id)).toEqual([]);
    await tenv.sleep(2 * DAY_MS); // day 11: 29 days left
    await eventually(
      () => notices(license.id),
      (n) => n.length === 1,
    );
    await tenv.sleep(23 * DAY_MS); // day 34: 6 days left
    await eventually(
      () => notices(license.id),
      (n) => n.length === 2,
    );
    // Renewed: the notices start again for the new date, none of them due yet.
    const renewed = new Date((await tenv.currentTimeMs()) + 60 * DAY_MS).toISOString();
    await (await service()).renewLicense(license.id, admin, renewed);
    await tenv.sleep(29 * DAY_MS);
    expect(await notices(license.id)).toHaveLength(2);
    await tenv.sleep(2 * DAY_MS);
    const all = await eventually(
      () => notices(license.id),
      (n) => n.length === 3,
    );
    expect(all.map((n) => [n.data.daysBefore, n.data.expiresAt, n.actor_kind])).toEqual([
      [30, firstExpiry, 'workflow'],
      [7, firstExpiry, 'workflow'],
      [30, renewed, 'workflow'],
    ]);
    expect(all[0]!.idempotency_key).toBe(`${licenseWorkflowId(license.id)}#expiring#${firstExpiry}#30`);
    // The new lifecycle recorded the patch, so its history replays with the notices in place.
    const raw = JSON.stringify(
      temporal.api.history.v1.History.toObject(
        temporal.api.history.v1.History.fromObject(
          await tenv.client.workflow.getHandle(licenseWorkflowId(license.id)).fetchHistory(),
        ),
        { bytes: String },
      ),
    );
    const decoded = [...raw.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)].map((m) =>
      Buffer.from(m[1]!, 'base64').toString('utf8'),
    );
    expect(decoded).toContain(JSON.stringify({ id: EXPIRY_NOTICE_PATCH, deprecated: false }));
    const { rows } = await db.pool.query(
      "SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = $1 AND event_type = 'license.expiring_soon'",
      [endpoint.id],
    );
    expect(rows[0].n).toBe(3);
    await webhooks.webhooks.updateEndpoint(admin, endpoint.id, { enabled: false });
    await webhooks.close();
  });

  it('an endpoint that keeps failing for 3 days is disabled, with an audit row', async () => {
    const services = servicesOnTestServer();
    const { endpoint } = await services.webhooks.createEndpoint(admin, {
      url: receiverUrl,
      events: ['license.suspended'],
    });
    const svc = await service();
    const license = await licenseFor(svc, 400);
    await svc.suspendLicense(license.id, admin, 'unpaid');
    // (the first test's notices, to an endpoint disabled since, are started too and end at once)
    expect(await services.webhooks.dispatchPending()).toBeGreaterThanOrEqual(1);
    const { rows } = await db.pool.query<{ event_seq: string }>(
      'SELECT event_seq FROM webhook_deliveries WHERE endpoint_id = $1',
      [endpoint.id],
    );
    const workflowId = webhookWorkflowId(endpoint.id, webhookEventId(rows[0]!.event_seq));
    const result = await tenv.client.workflow.getHandle(workflowId).result();
    expect(result.outcome).toBe('failed');
    // Backoff from 1 s doubling to at most an hour apart, for 3 days of server time: 13 tries in
    // the first 68 minutes, then one an hour (about 83 in all), each one logged. (The server's
    // clock also skips to other workflows' timers meanwhile, so elapsed time says less.)
    expect(result.attempts).toBeGreaterThan(75);
    expect(result.attempts).toBeLessThan(90);
    expect(result.attempts).toBe(failures);
    const view = await services.webhooks.getEndpoint(endpoint.id);
    expect(view).toMatchObject({ enabled: false, disabledReason: 'persistent delivery failure' });
    const audit = await db.pool.query<{ actor_kind: string; actor_id: string }>(
      "SELECT actor_kind, actor_id FROM audit_events WHERE action = 'webhook_endpoint.auto_disabled' AND subject_id = $1",
      [endpoint.id],
    );
    expect(audit.rows).toEqual([{ actor_kind: 'workflow', actor_id: workflowId }]);
    const page = await services.webhooks.listDeliveries(endpoint.id, {});
    expect(page.items[0]).toMatchObject({ state: 'failed' });
    expect(page.items[0]!.attempts[0]).toMatchObject({ statusCode: 500, responseExcerpt: 'down for maintenance' });
    await services.close();
  });
});
