import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { buildApp } from '../../api/app';
import { createLogger } from '../../api/logger';
import { createTemporal } from '../../services/temporal';
import { createPool } from '../../db';
import { systemClock, type Actor } from '../../protocol';
import { agentKeyPemOf } from '../support/agent-keys';
import { testLicenseService } from '../support/license-helpers';
import { createTestKeys, insertAgents, insertCustomer } from '../support/activation-fixtures';
import { createStaff } from '../support/agent-server-fixtures';
import { createTestServices, readMetrics, testConfig } from '../support/app';
import { createTestDatabase } from '../support/db';
import { startTestStack } from '../support/stack';
import { ROOT } from '../../scripts/stack/tools';
import type { FleetAnswer, FleetOrder } from './status-fleet';

/**
 * What bench:revocation's runs share: PostgreSQL, the Temporal dev server, the worker as its own
 * process (`agentina worker`, as in production), the API listening on a port with its one LISTEN
 * connection, and agents (in a fleet process) that park on GET /v1/agent/status as a real agent does.
 */
export type Agent = { agentId: string; credential: string; licenseId: string };
/** An agent's first changed answer; `at` in ms since the epoch, sub-millisecond (performance.timeOrigin + now()). */
export type Answer = { body: string; at: number; agent: Agent };
export const nowMs = () => performance.timeOrigin + performance.now();

export async function inBatches<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export const quantile = (sorted: number[], q: number) =>
  sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 10) / 10 : 0;

async function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const worker = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentina.js'), 'worker'], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the worker did not start within 120 s')), 120_000);
    let seen = '';
    worker.stdout.on('data', (d: Buffer) => {
      seen = (seen + d.toString()).slice(-10_000);
      if (seen.includes('worker running')) {
        clearTimeout(timer);
        resolve();
      }
    });
    worker.once('exit', (code) => reject(new Error(`the worker exited with ${code}`)));
  });
  worker.stdout.resume();
  return worker;
}

export async function startRevocationRig(log: (line: string) => void) {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const stack = await startTestStack(log);
  const db = await createTestDatabase('benchrevoke');
  const keys = createTestKeys();
  const apiPool = createPool(db.appUrl, { applicationName: 'bench-api', max: 20 });
  const address = process.env.AGENTINA_TEST_TEMPORAL_ADDRESS!;
  const connection = await Connection.connect({ address });
  const taskQueue = 'bench-revocation';
  const config = testConfig({ AGENTINA_KEYS_DIR: keys.dir, LOG_LEVEL: 'warn', TEMPORAL_ADDRESS: address });
  const apiTemporal = createTemporal(config);
  let worker: ChildProcess | undefined;
  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  const close = async () => {
    await app?.close();
    if (worker && worker.exitCode === null) {
      const exited = new Promise((resolve) => worker!.once('exit', resolve));
      worker.kill('SIGINT');
      await exited;
    }
    await apiTemporal.close();
    await connection.close();
    await apiPool.end();
    await db.drop();
    keys.remove();
    await stack.stop();
  };
  try {
    worker = await startWorker({
      DATABASE_URL: db.adminUrl,
      TEMPORAL_ADDRESS: address,
      TEMPORAL_TASK_QUEUE: taskQueue,
      AGENTINA_KEYS_DIR: keys.dir,
    });
    log('worker process running');
    const licenses = testLicenseService({
      pool: apiPool,
      temporal: { client: new Client({ connection, namespace: 'default' }), taskQueue },
      keysDir: keys.dir,
    });
    const services = createTestServices({ config, pool: apiPool, temporal: apiTemporal, clock: systemClock });
    const started = await buildApp({
      config,
      pool: apiPool,
      temporal: apiTemporal,
      clock: systemClock,
      services,
      logger: createLogger('warn'),
    });
    app = started;
    await started.listen({ port: 0, host: '127.0.0.1' });
    const port = (started.server.address() as { port: number }).port;
    const customer = await insertCustomer(apiPool, 'Bench customer');
    const adminHeaders = await createStaff(apiPool, systemClock).admin();

    const parkedNow = async () => Number(/agentina_status_parked (\d+)/.exec(await readMetrics(started))![1]);

    return {
      licenses,
      admin: { kind: 'admin', id: 'adm_benchrevocation0001' } as Actor,
      customer,
      keySet: keys.keySet,
      pool: apiPool,
      appUrl: db.appUrl,
      app: started,
      adminHeaders,
      close,

      /** A license of `agents` seats with that many agents, created through the license service. */
      async licenseWithAgents(agents: number, graceDays = 7): Promise<{ licenseId: string; agents: Agent[] }> {
        const { license } = await licenses.createLicense(this.admin, {
          customerId: customer,
          plan: 'bench',
          features: {},
          maxAgents: Math.max(agents, 1),
          graceDays,
          trialEndState: 'expired',
          term: { days: 365 },
        });
        const rows = await insertAgents(apiPool, license.id, customer, agents);
        return { licenseId: license.id, agents: rows.map((a) => ({ ...a, licenseId: license.id })) };
      },

      /**
       * Parks every agent's status long-poll from a fleet process (./status-fleet.ts; `extra` is
       * added to the query, e.g. `&license=1`) and resolves once all are parked in the API; then
       * `answers` settles with each agent's first changed answer.
       */
      async park(agents: Agent[], extra = ''): Promise<{ answers: Promise<Answer[]> }> {
        const before = await parkedNow();
        const pems = agents.map((a) => agentKeyPemOf(a.credential));
        const keyPems = [...new Set(pems)];
        const order: FleetOrder = {
          port,
          extra,
          keyPems,
          agents: agents.map((a, i) => ({
            agentId: a.agentId,
            credential: a.credential,
            key: keyPems.indexOf(pems[i]!),
          })),
        };
        const fleet = spawn(process.execPath, ['-r', 'tsx/cjs', require.resolve('./status-fleet.ts')], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        const byId = new Map(agents.map((a) => [a.agentId, a]));
        let sent: () => void = () => undefined;
        const parkedSent = new Promise<void>((resolve) => (sent = resolve));
        const answers = new Promise<Answer[]>((resolve, reject) => {
          fleet.on('message', (m: { kind: string; answers?: FleetAnswer[]; failures?: number; failed?: string[] }) => {
            if (m.kind === 'parked') sent();
            if (m.kind !== 'done') return;
            if (m.failures) log(`${m.failures} fleet requests failed, e.g. ${m.failed?.[0]}`);
            resolve(m.answers!.map((x) => ({ body: x.body, at: x.at, agent: byId.get(x.agentId)! })));
          });
          fleet.once('exit', (code) => reject(new Error(`the fleet process exited with ${code}`)));
        });
        answers.catch(() => undefined);
        fleet.send(order);
        await Promise.race([parkedSent, answers]);
        for (let i = 0; i < 3000 && (await parkedNow()) - before < agents.length; i++)
          await new Promise((r) => setTimeout(r, 20));
        const parked = (await parkedNow()) - before;
        log(`${parked} long-polls parked on one LISTEN connection`);
        if (parked < agents.length) {
          fleet.kill('SIGKILL');
          throw new Error(`only ${parked} of ${agents.length} requests parked`);
        }
        return { answers };
      },
    };
  } catch (err) {
    await close();
    throw err;
  }
}
export type RevocationRig = Awaited<ReturnType<typeof startRevocationRig>>;
