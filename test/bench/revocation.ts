import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { buildApp } from '../../api/app';
import { createLogger } from '../../api/logger';
import { createTemporal } from '../../services/temporal';
import { createPool } from '../../db';
import { PROOF_HEADER, statusResponseSchema, systemClock, verifySignature, type Actor } from '../../protocol';
import { agentProofFor } from '../support/agent-keys';
import { testLicenseService } from '../support/license-helpers';
import { createTestKeys, insertAgents, insertCustomer } from '../support/activation-fixtures';
import { createTestServices, readMetrics, testConfig } from '../support/app';
import { createTestDatabase } from '../support/db';
import { startTestStack } from '../support/stack';
import { ROOT } from '../../scripts/stack/tools';

/**
 * `npm run bench:revocation`: N agents (default 1,000) park on GET /v1/agent/status — half of
 * them on two big licenses, half on licenses with one agent each — then an admin revokes every
 * license through the license service (a Workflow Update on each licenseLifecycle, whose
 * transition activity commits the row, feed row and NOTIFY). For each parked request we measure
 * from its license's revoke call returning to the request answering (an answer that arrives
 * before the call returns counts as 0 ms), and count the requests that answered `revoked` with a
 * valid signature. Options: --agents N, --big-licenses N (default 2).
 */

/** Admins revoking at once; the workflow updates queue in Temporal beyond a handful. */
const REVOKE_CONCURRENCY = 16;

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
  return v;
}

const quantile = (sorted: number[], q: number) =>
  sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 10) / 10 : 0;

async function inBatches<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export async function main(args: string[]): Promise<object> {
  const agentCount = option(args, 'agents', 1000);
  const bigLicenses = option(args, 'big-licenses', 2);
  const log = (line: string) => console.log(`[bench:revocation] ${line}`);
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
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  let worker: ChildProcess | undefined;
  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  try {
    // The worker runs as its own process, as in production (`agentina worker`).
    worker = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentina.js'), 'worker'], {
      env: {
        ...process.env,
        DATABASE_URL: db.adminUrl,
        TEMPORAL_ADDRESS: address,
        TEMPORAL_TASK_QUEUE: taskQueue,
        AGENTINA_KEYS_DIR: keys.dir,
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the worker did not start within 120 s')), 120_000);
      let seen = '';
      worker!.stdout!.on('data', (d: Buffer) => {
        seen = (seen + d.toString()).slice(-10_000);
        if (seen.includes('worker running')) {
          clearTimeout(timer);
          resolve();
        }
      });
      worker!.once('exit', (code) => reject(new Error(`the worker exited with ${code}`)));
    });
    worker.stdout!.resume();
    log('worker process running');
    const licenses = testLicenseService({
      pool: apiPool,
      temporal: { client: new Client({ connection, namespace: 'default' }), taskQueue },
      keysDir: keys.dir,
    });
    const admin: Actor = { kind: 'admin', id: 'adm_benchrevocation0001' };

    // Licenses: `bigLicenses` fleets sharing half the agents, and one license per remaining agent.
    const bigShare = Math.floor(agentCount / 2);
    const plan: Array<{ agents: number }> = [];
    for (let i = 0; i < bigLicenses; i++)
      plan.push({ agents: Math.floor(bigShare / bigLicenses) + (i < bigShare % bigLicenses ? 1 : 0) });
    while (plan.reduce((n, p) => n + p.agents, 0) < agentCount) plan.push({ agents: 1 });
    const customer = await insertCustomer(apiPool, 'Bench customer');
    const provisioned: Array<{ licenseId: string; agents: Array<{ agentId: string; credential: string }> }> = [];
    const t0 = performance.now();
    await inBatches(plan, 32, async (p) => {
      const { license } = await licenses.createLicense(admin, {
        customerId: customer,
        plan: 'bench',
        features: {},
        maxAgents: Math.max(p.agents, 1),
        graceDays: 7,
        trialEndState: 'expired',
        term: { days: 365 },
      });
      provisioned.push({ licenseId: license.id, agents: await insertAgents(apiPool, license.id, customer, p.agents) });
    });
    log(
      `${plan.length} licenses (${bigLicenses} with ${plan[0]!.agents} agents, ${plan.length - bigLicenses} with 1) and ${agentCount} agents in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    const services = createTestServices({ config, pool: apiPool, temporal: apiTemporal, clock: systemClock });
    app = await buildApp({
      config,
      pool: apiPool,
      temporal: apiTemporal,
      clock: systemClock,
      services,
      logger: createLogger('warn'),
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as { port: number }).port;
    const get = (credential: string, path: string) =>
      new Promise<{ body: string; at: number; wall: number }>((resolve, reject) => {
        const req = http.get(
          {
            host: '127.0.0.1',
            port,
            path,
            agent: httpAgent,
            headers: {
              authorization: `Bearer ${credential}`,
              [PROOF_HEADER]: agentProofFor(credential, { method: 'GET', url: path }),
            },
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () =>
              res.statusCode === 200
                ? resolve({ body, at: performance.now(), wall: Date.now() })
                : reject(new Error(`status ${res.statusCode}: ${body}`)),
            );
          },
        );
        req.on('error', reject);
      });

    // Each agent learns its current version, then parks on it.
    const all = provisioned.flatMap((p) => p.agents.map((a) => ({ ...a, licenseId: p.licenseId })));
    const since = new Map<string, number>();
    await inBatches(all, 64, async (a) => {
      since.set(
        a.agentId,
        statusResponseSchema.parse(JSON.parse((await get(a.credential, '/v1/agent/status')).body)).status.payload
          .version,
      );
    });
    // Like a real agent: park, and park again when a wait ends with no change.
    const answers = all.map(async (a) => {
      for (;;) {
        const r = await get(a.credential, `/v1/agent/status?since=${since.get(a.agentId)}&wait=30`);
        if ((JSON.parse(r.body) as { changed: boolean }).changed) return { ...r, agent: a };
      }
    });
    const parkedMetric = async () => Number(/agentina_status_parked (\d+)/.exec(await readMetrics(app!))![1]);
    for (let i = 0; i < 1000 && (await parkedMetric()) < all.length; i++) await new Promise((r) => setTimeout(r, 20));
    const parked = await parkedMetric();
    log(`${parked} long-polls parked on one LISTEN connection`);
    if (parked < all.length) throw new Error(`only ${parked} of ${all.length} requests parked`);

    // A bystander LISTENing on its own connection notes when each license's NOTIFY is delivered,
    // so the fan-out (notice → every parked request answered) can be told apart from Temporal.
    const observer = new PgClient({ connectionString: db.appUrl });
    await observer.connect();
    const committed = new Map<string, number>();
    observer.on('notification', (n) => {
      const notice = JSON.parse(n.payload ?? '{}') as { licenseId?: string };
      if (notice.licenseId && !committed.has(notice.licenseId)) committed.set(notice.licenseId, Date.now());
    });
    await observer.query('LISTEN agentina_status');

    // Revoke every license through its workflow; note when each call started and returned.
    const started = new Map<string, number>();
    const returned = new Map<string, number>();
    const revokeStart = performance.now();
    await inBatches(provisioned, REVOKE_CONCURRENCY, async (p) => {
      started.set(p.licenseId, performance.now());
      await licenses.revokeLicense(p.licenseId, admin, 'bench: contract terminated');
      returned.set(p.licenseId, performance.now());
    });
    log(`${provisioned.length} revokes returned in ${((performance.now() - revokeStart) / 1000).toFixed(2)} s`);

    const results = await Promise.all(answers);
    await observer.end();
    const keySet = keys.keySet;
    const afterReturn: number[] = [];
    const afterStart: number[] = [];
    const afterCommit: number[] = [];
    let answered = 0;
    let early = 0;
    for (const r of results) {
      const s = statusResponseSchema.parse(JSON.parse(r.body));
      const valid = verifySignature(s.status.payload, s.status.signature, keySet).ok;
      if (!valid || !s.changed || s.status.payload.licenseState !== 'revoked') continue;
      answered++;
      const ms = r.at - returned.get(r.agent.licenseId)!;
      if (ms < 0) early++;
      afterReturn.push(Math.max(0, ms));
      afterStart.push(r.at - started.get(r.agent.licenseId)!);
      afterCommit.push(Math.max(0, r.wall - (committed.get(r.agent.licenseId) ?? r.wall)));
    }
    afterCommit.sort((x, y) => x - y);
    afterReturn.sort((x, y) => x - y);
    afterStart.sort((x, y) => x - y);
    log(
      `${answered}/${all.length} parked requests answered "revoked" with a valid signature; ${early} of them before their revoke call had returned`,
    );
    log(
      `after the revoke call returned: p50 ${quantile(afterReturn, 0.5)} ms, p99 ${quantile(afterReturn, 0.99)} ms, max ${quantile(afterReturn, 1)} ms (goal p99 < 1000)`,
    );
    log(
      `after the NOTIFY reached a bystander (fan-out alone): p50 ${quantile(afterCommit, 0.5)} ms, p99 ${quantile(afterCommit, 0.99)} ms, max ${quantile(afterCommit, 1)} ms`,
    );
    log(
      `after the revoke call started:  p50 ${quantile(afterStart, 0.5)} ms, p99 ${quantile(afterStart, 0.99)} ms, max ${quantile(afterStart, 1)} ms`,
    );
    return {
      bench: 'revocation',
      agents: all.length,
      p50_ms: quantile(afterReturn, 0.5),
      p99_ms: quantile(afterReturn, 0.99),
      answered,
      licenses: provisioned.length,
      from_notify_p99_ms: quantile(afterCommit, 0.99),
      from_call_start_p99_ms: quantile(afterStart, 0.99),
    };
  } finally {
    httpAgent.destroy();
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
  }
}
