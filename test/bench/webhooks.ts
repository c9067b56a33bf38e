/**
 * npm run bench:webhooks [events=1000] [endpoints=5]
 *
 * Commits N audit rows of a subscribed action (each its own transaction, as a change would), with
 * E endpoints on a loopback receiver, and measures, through the real path (fan-out trigger →
 * dispatcher → one webhookDelivery workflow per delivery on the dev server → signed POST):
 * deliveries/s, the latency from each row's commit to the receiver's 2xx (p50/p99), and the
 * Temporal actions per delivery (from sampled histories). Baseline from the same run: the same
 * signed POSTs sent directly (sendWebhook, no Temporal), at the same concurrency as the worker's
 * activity slots.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { appendAudit, withTransaction } from '../../db';
import { systemClock, type Actor } from '../../protocol';
import { createAllowList } from '../../services/webhooks/outbound-address';
import { newWebhookSecret, sendWebhook, signWebhook } from '../../services/webhooks/webhook-sender';
import { createWorker } from '../../worker';
import { createTestServices, testConfig, testServices } from '../support/app';
import { createTestDatabase } from '../support/db';
import { createTestKeysDir } from '../support/license-helpers';
import { startTestStack } from '../support/stack';
import { runWorkerInBackground, testTemporalDeps } from '../support/temporal';

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;
/** Actions Temporal bills for, as history events: starts, activities, timers, markers, signals, updates. */
const ACTION_EVENTS = new Set([
  'EVENT_TYPE_WORKFLOW_EXECUTION_STARTED',
  'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED',
  'EVENT_TYPE_TIMER_STARTED',
  'EVENT_TYPE_MARKER_RECORDED',
  'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED',
  'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED',
]);
const CONCURRENCY = 50; // the worker's activity slots (createWorker's default)

export async function main(args: string[]): Promise<object> {
  const events = Number(args[0] ?? 1000);
  const endpoints = Number(args[1] ?? 5);
  if (!Number.isInteger(events) || events < 1 || !Number.isInteger(endpoints) || endpoints < 1)
    throw new Error('usage: bench:webhooks [events] [endpoints]');
  const log = (line: string) => console.log(`[webhooks] ${line}`);
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const stack = await startTestStack(log);
  const db = await createTestDatabase('benchwebhooks');
  const keys = createTestKeysDir();
  const env = { WEBHOOK_ALLOW_HOSTS: '127.0.0.1' };
  const received = new Map<string, number>(); // `${path} ${webhook-id}` → time of the 2xx
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.set(`${req.url} ${String(req.headers['webhook-id'])}`, performance.now());
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const connection = await Connection.connect({ address: process.env.AGENTINA_TEST_TEMPORAL_ADDRESS! });
  const client = new Client({ connection });
  const taskQueue = 'bench-webhooks';
  const services = createTestServices({
    pool: db.pool,
    temporal: testTemporalDeps(client, taskQueue),
    clock: systemClock,
    config: testConfig({ AGENTINA_KEYS_DIR: keys.dir, ...env }),
  });
  const nativeConnection = await NativeConnection.connect({ address: process.env.AGENTINA_TEST_TEMPORAL_ADDRESS! });
  const worker = await createWorker({
    connection: nativeConnection,
    namespace: 'default',
    taskQueue,
    services: testServices({ pool: db.pool, keysDir: keys.dir, env }),
    workflowBundle: { codePath: stack.bundlePath },
  });
  const stopWorker = runWorkerInBackground(worker);
  const stopDispatcher = services.webhooks.startDispatcher();
  try {
    // Baseline: the same signed POSTs, sent directly at the worker's concurrency.
    const allow = createAllowList(['127.0.0.1']);
    const secret = newWebhookSecret();
    const body = JSON.stringify({ type: 'agent.online', data: { version: 1 } });
    const direct = events * endpoints;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < direct; i = next++) {
          const ts = Math.floor(Date.now() / 1000);
          const r = await sendWebhook({
            url: `${base}/direct`,
            body,
            allow,
            headers: {
              'webhook-id': `d${i}`,
              'webhook-timestamp': String(ts),
              'webhook-signature': signWebhook([secret], `d${i}`, ts, body),
            },
          });
          if (!r.ok) throw new Error(`direct send failed: ${r.error}`);
        }
      }),
    );
    const directPerSecond = direct / ((performance.now() - t0) / 1000);
    log(`baseline: ${Math.round(directPerSecond)} direct signed POSTs/s`);

    const admin: Actor = { kind: 'admin', id: 'adm_benchwebhooks000000' };
    for (let e = 0; e < endpoints; e++)
      await services.webhooks.createEndpoint(admin, { url: `${base}/e${e}`, events: ['agent.online'] });
    const committed = new Map<string, number>(); // idempotency key → commit time
    const started = performance.now();
    let n = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = n++; i < events; i = n++) {
          const key = `bench/webhooks/${i}`;
          await withTransaction(db.pool, (tx) =>
            appendAudit(tx, {
              actor: { kind: 'agent', id: `agt_bench${i}` },
              action: 'agent.online',
              subject: { kind: 'agent', id: `agt_bench${i}` },
              data: { from: 'offline', to: 'active' },
              idempotencyKey: key,
            }),
          );
          committed.set(key, performance.now());
        }
      }),
    );
    log(`${events} events committed in ${round((performance.now() - started) / 1000, 2)} s`);
    const total = events * endpoints;
    const deadline = Date.now() + 20 * 60_000;
    while ([...received.keys()].filter((k) => !k.startsWith('/direct')).length < total) {
      if (Date.now() > deadline) throw new Error('deliveries did not all arrive within 20 minutes');
      await new Promise((r) => setTimeout(r, 200));
    }
    const seconds = (performance.now() - started) / 1000;
    const seqs = await db.pool.query<{ seq: string; idempotency_key: string }>(
      "SELECT seq, idempotency_key FROM audit_events WHERE idempotency_key LIKE 'bench/webhooks/%'",
    );
    const latencies: number[] = [];
    for (const r of seqs.rows) {
      const at = committed.get(r.idempotency_key)!;
      for (let e = 0; e < endpoints; e++) latencies.push(received.get(`/e${e} msg_${r.seq}`)! - at);
    }
    latencies.sort((a, b) => a - b);
    const ids = (
      await db.pool.query<{ endpoint_id: string; event_seq: string }>(
        'SELECT endpoint_id, event_seq FROM webhook_deliveries ORDER BY random() LIMIT 20',
      )
    ).rows;
    let actions = 0;
    for (const d of ids) {
      const h = await client.workflow.getHandle(`webhook/${d.endpoint_id}/msg_${d.event_seq}`).fetchHistory();
      const events = temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.fromObject(h), {
        enums: String,
      }).events as Array<{ eventType: string }>;
      actions += events.filter((ev) => ACTION_EVENTS.has(ev.eventType)).length;
    }
    const perSecond = total / seconds;
    return {
      events,
      endpoints,
      deliveries: total,
      seconds: round(seconds, 2),
      deliveriesPerSecond: round(perSecond),
      commitTo2xxP50Ms: Math.round(percentile(latencies, 50)),
      commitTo2xxP99Ms: Math.round(percentile(latencies, 99)),
      temporalActionsPerDelivery: round(actions / ids.length, 2),
      baselineDirectPostsPerSecond: round(directPerSecond),
      ratioToDirect: round(perSecond / directPerSecond, 3),
      loadAverage1m: round(loadavg()[0]!, 2),
    };
  } finally {
    await stopDispatcher();
    await stopWorker();
    await services.close();
    await connection.close();
    await nativeConnection.close();
    await new Promise<void>((r) => receiver.close(() => r()));
    await db.drop();
    keys.remove();
    await stack.stop();
  }
}
