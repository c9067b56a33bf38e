/**
 * npm run bench:lifecycles [licenses=2000] [expirySeconds=5] [concurrency=32] [workflowPollers nonStickyRatio]
 *
 * Creates N licenses through the license service (row + audit + workflow start on the dev
 * server), each expiring `expirySeconds` after its own creation with 0 grace days, and measures
 * starts/s and how late each expiry transition landed in PostgreSQL (updated_at − expires_at).
 * Goals: ≥ 200 starts/s; lateness p99 < 2 s. The worker runs in its own process with SDK default
 * pollers unless `workflowPollers nonStickyRatio` are given (new workflows wait on the non-sticky
 * queue, which the default polls with 2 of its 10 pollers). The 1-minute load average is reported
 * because this machine is shared: lateness is mostly time spent waiting for a CPU.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { createPool } from '../../db';
import type { Actor } from '../../protocol';
import { createTestDatabase } from '../support/db';
import { createTestCustomer, createTestKeysDir, testLicenseService } from '../support/license-helpers';
import { startTestStack } from '../support/stack';

function startWorkerProcess(args: {
  address: string;
  taskQueue: string;
  appDatabaseUrl: string;
  keysDir: string;
  bundlePath: string;
  pollers?: { workflow: number; nonStickyRatio: number };
}): Promise<ChildProcess> {
  const proc = spawn(
    process.execPath,
    ['-r', 'tsx/cjs', require.resolve('../support/license-worker.ts'), JSON.stringify(args)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    proc.stdout.on('data', (c: Buffer) => c.toString().includes('worker ready') && resolve(proc));
    proc.on('exit', (code, signal) => reject(new Error(`worker process exited (${code ?? signal})`)));
  });
}

async function stopWorkerProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15000);
  await exited;
  clearTimeout(timer);
}

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;

export async function main(args: string[]): Promise<object> {
  const licenses = Number(args[0] ?? 2000);
  const expirySeconds = Number(args[1] ?? 5);
  if (!Number.isInteger(licenses) || licenses < 1 || !(expirySeconds > 0))
    throw new Error('usage: bench:lifecycles [licenses] [expirySeconds]');
  const log = (line: string) => console.log(`[lifecycles] ${line}`);
  Runtime.install({ logger: new DefaultLogger('ERROR') });

  const stack = await startTestStack(log);
  const db = await createTestDatabase('benchlife');
  const keys = createTestKeysDir();
  const apiPool = createPool(db.appUrl, { applicationName: 'bench-api', max: 32 });
  const address = process.env.AGENTINA_TEST_TEMPORAL_ADDRESS!;
  const connection = await Connection.connect({ address });
  const taskQueue = 'bench-lifecycles';
  let workerProcess: ChildProcess | undefined;
  try {
    // The worker runs in its own process, as deployed (API and worker apart), with the production
    // activities, bundle and SDK default pollers (more pollers made lateness worse on 2 cores).
    workerProcess = await startWorkerProcess({
      address,
      taskQueue,
      appDatabaseUrl: db.appUrl,
      keysDir: keys.dir,
      bundlePath: stack.bundlePath,
      ...(args[3] ? { pollers: { workflow: Number(args[3]), nonStickyRatio: Number(args[4] ?? 0.5) } } : {}),
    });
    const service = testLicenseService({
      pool: apiPool,
      temporal: { client: new Client({ connection, namespace: 'default' }), taskQueue },
      keysDir: keys.dir,
    });
    const customerId = await createTestCustomer(apiPool, 'Bench customer');
    const actor: Actor = { kind: 'system', id: 'svcacct_benchlifecycles01' };

    log(`starting ${licenses} license workflows, each expiring ${expirySeconds}s after its creation`);
    const concurrency = Number(args[2] ?? 32);
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < licenses) {
          const i = ++next;
          await service.createLicense(actor, {
            customerId,
            plan: 'bench',
            features: {},
            maxAgents: 1,
            graceDays: 0,
            trialEndState: 'expired',
            term: { expiresAt: new Date(Date.now() + expirySeconds * 1000).toISOString() },
          });
          if (i % 500 === 0) log(`${i} started`);
        }
      }),
    );
    const startSeconds = (performance.now() - started) / 1000;
    const startsPerS = Math.round(licenses / startSeconds);
    log(`${licenses} started in ${startSeconds.toFixed(1)} s: ${startsPerS} starts/s`);

    const deadline = Date.now() + expirySeconds * 1000 + 120000;
    let expired = 0;
    while (Date.now() < deadline) {
      const { rows } = await apiPool.query<{ n: string }>(
        "SELECT count(*) AS n FROM licenses WHERE customer_id = $1 AND state = 'expired'",
        [customerId],
      );
      expired = Number(rows[0]!.n);
      if (expired === licenses) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    log(`${expired}/${licenses} expired in PostgreSQL`);
    const { rows } = await apiPool.query<{ id: string; ms: number; expires_at: Date }>(
      "SELECT id, expires_at, (extract(epoch FROM (updated_at - expires_at)) * 1000)::float8 AS ms FROM licenses WHERE customer_id = $1 AND state = 'expired' ORDER BY ms",
      [customerId],
    );
    const lateness = rows.map((r) => r.ms);
    // Where the time of the p99 license went: its history, relative to its expiry.
    const p99Row = rows[Math.min(rows.length - 1, Math.ceil(0.99 * rows.length) - 1)];
    if (p99Row) {
      const history = await new Client({ connection, namespace: 'default' }).workflow
        .getHandle(`license/${p99Row.id}`)
        .fetchHistory();
      const t0 = p99Row.expires_at.getTime();
      for (const e of history.events ?? []) {
        const ms = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
        log(
          `  p99 license: ${String(e.eventType).padEnd(4)} ${Object.keys(e).find((k) => k.endsWith('Attributes')) ?? ''} at ${ms - t0} ms`,
        );
      }
    }
    const p50 = Math.round(percentile(lateness, 50));
    const p99 = Math.round(percentile(lateness, 99));
    const max = Math.round(lateness[lateness.length - 1] ?? 0);
    log(`expiry lateness p50 ${p50} ms, p99 ${p99} ms, max ${max} ms`);
    return {
      bench: 'lifecycles',
      licenses,
      starts_per_s: startsPerS,
      load_avg_1m: Math.round(loadavg()[0]! * 10) / 10,
      expiry_lateness_p50_ms: p50,
      expiry_lateness_p99_ms: p99,
      expiry_lateness_max_ms: max,
      expired,
    };
  } finally {
    if (workerProcess) await stopWorkerProcess(workerProcess);
    await connection.close();
    await apiPool.end();
    await db.drop();
    keys.remove();
    await stack.stop();
  }
}
