import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendAudit, withTransaction } from '../../db';
import { UNFINISHED_ATTEMPT } from '../../db/webhooks-repo';
import { systemClock, type Actor, type WebhookDeliveryView } from '../../protocol';
import type { Services } from '../../services';
import { createTestServices, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startChildWorker } from '../support/child-worker';
import { createTestKeysDir, eventually } from '../support/license-helpers';
import { connectTestTemporal, testTemporalDeps, type TestTemporal } from '../support/temporal';

/** A worker SIGKILLed between the tries of a delivery: a new worker finishes it, nothing lost or doubled. */
describe('webhook delivery across a worker killed mid-retry', () => {
  const admin: Actor = { kind: 'admin', id: 'adm_webhookkilltester00' };
  const env = { WEBHOOK_ALLOW_HOSTS: '127.0.0.1' };
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let services: Services;
  let receiver: http.Server;
  const tries: Array<{ id: string; status: number }> = [];
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('webhookkill');
    t = await connectTestTemporal('webhookkill');
    keys = createTestKeysDir();
    receiver = http.createServer((req, res) => {
      req.resume();
      const status = tries.length < 2 ? 503 : 200;
      tries.push({ id: String(req.headers['webhook-id']), status });
      res.writeHead(status).end();
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    services = createTestServices({
      pool: db.pool,
      temporal: testTemporalDeps(t.client, t.taskQueue),
      clock: systemClock,
      config: testConfig({ AGENTINA_KEYS_DIR: keys.dir, ...env }),
    });
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await services?.close();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  async function startChild(): Promise<ChildProcess> {
    const proc = await startChildWorker({
      address: t.address,
      taskQueue: t.taskQueue,
      appDatabaseUrl: db.appUrl,
      keysDir: keys.dir,
      env,
    });
    children.push(proc);
    return proc;
  }

  it('the first worker dies after a failed try; the second delivers once, with every try logged', async () => {
    const port = (receiver.address() as AddressInfo).port;
    const { endpoint } = await services.webhooks.createEndpoint(admin, {
      url: `http://127.0.0.1:${port}/hook`,
      events: ['agent.online'],
    });
    await withTransaction(db.pool, (tx) =>
      appendAudit(tx, {
        actor: { kind: 'agent', id: 'agt_webhookkill000000001' },
        action: 'agent.online',
        subject: { kind: 'agent', id: 'agt_webhookkill000000001' },
      }),
    );
    const first = await startChild();
    expect(await services.webhooks.dispatchPending()).toBe(1);
    // Killed once the first (failed) try is logged: between tries, or during the second one.
    await eventually(
      () => services.webhooks.listDeliveries(endpoint.id, {}),
      (p) => p.items[0]?.attempts[0]?.statusCode === 503,
    );
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const afterKill = tries.length;
    await startChild();
    const page = await eventually(
      () => services.webhooks.listDeliveries(endpoint.id, {}),
      (p) => p.items[0]?.state === 'succeeded',
      60_000,
    );
    const d: WebhookDeliveryView = page.items[0]!;
    expect(afterKill).toBeLessThan(3); // the kill came before the success
    expect(tries.map((x) => x.status)).toEqual([503, 503, 200]);
    expect(new Set(tries.map((x) => x.id))).toEqual(new Set([d.eventId]));
    // Every try the receiver saw is in the log with its answer; a try the dead worker was making
    // shows as unfinished. One success, the last.
    expect(d.attempts.length).toBeGreaterThanOrEqual(tries.length);
    const finished = d.attempts.filter((a) => a.error !== UNFINISHED_ATTEMPT).map((a) => a.statusCode);
    if (finished.length === d.attempts.length) expect(finished).toEqual(tries.map((x) => x.status));
    expect(d.attempts.filter((a) => a.error === UNFINISHED_ATTEMPT).every((a) => a.statusCode === null)).toBe(true);
    expect(d.attempts.filter((a) => a.ok)).toHaveLength(1);
    expect(d.attempts[d.attempts.length - 1]).toMatchObject({ ok: true, statusCode: 200 });
  });
});
