import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadPurposeKeySet, PROOF_HEADER, systemClock, verifySignature } from '../../protocol';
import type { LicenseService } from '../../services/licenses/license-service';
import { licenseWorkflowId } from '../../workflows/license-contract';
import { freePort } from '../../scripts/stack/ports';
import { ROOT } from '../../scripts/stack/tools';
import { createWorker } from '../../worker';
import { insertAgents } from '../support/activation-fixtures';
import { agentProofFor } from '../support/agent-keys';
import { testServices } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import {
  createTermLicense,
  createTestCustomer,
  createTestKeysDir,
  eventually,
  testLicenseService,
} from '../support/license-helpers';
import { startOwnTemporal, type OwnTemporal } from '../support/own-temporal';
import { runWorkerInBackground } from '../support/temporal';
import { admin, expectLedgerVerifies, scale, sleep, transitionsOf, untilLanded } from './chaos-support';

/**
 * Faults survived with nothing lost: each scenario ends with the ledger verifying, every
 * transition recorded exactly once, and every agent on the right status. `npm run chaos` runs them
 * at full scale (CHAOS_SCALE=full); `npm test` (and CI) at a tenth. The other scenarios:
 * chaos-postgres.test.ts (PostgreSQL restarted), chaos-agent-cutoff.test.ts (an agent cut off
 * through its grace period); the worker SIGKILL is test/integration/license-lifecycle-dev.test.ts.
 */
describe('chaos: the Temporal server SIGKILLed mid-burst and restarted on its file', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'agentina-chaos-temporal-'));
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let temporal: OwnTemporal;
  let licenses: LicenseService;
  let stopWorker: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('chaostemporal');
    keys = createTestKeysDir();
    temporal = await startOwnTemporal({
      dbFile: path.join(tmp, 'temporal.db'),
      logFile: path.join(tmp, 'temporal.log'),
    });
    const taskQueue = 'chaos-temporal';
    licenses = testLicenseService({
      pool: db.pool,
      temporal: { client: temporal.client, taskQueue },
      keysDir: keys.dir,
    });
    const worker = await createWorker({
      connection: temporal.nativeConnection,
      namespace: 'default',
      taskQueue,
      services: testServices({ pool: db.pool, clock: systemClock, keysDir: keys.dir }),
      workflowBundle: { codePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') },
    });
    stopWorker = runWorkerInBackground(worker);
  });

  afterAll(async () => {
    await stopWorker?.();
    await temporal?.stop();
    await db?.drop();
    keys?.remove();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('every revoke lands once, every expiry timer fires once, the ledger verifies', async () => {
    const n = scale(200, 20);
    const customerId = await createTestCustomer(db.pool);
    const expiresAt = new Date(Date.now() + scale(60_000, 30_000)).toISOString();
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(await createTermLicense(licenses, admin, customerId, expiresAt));
    const revoked = ids.filter((_, i) => i % 2 === 0);
    const seen = { unavailable: 0, other: [] as string[] };
    // Revokes arrive over two seconds; the server dies a quarter of the way in, for five seconds.
    const spans: Array<{ start: number; end: number }> = [];
    const burst = Promise.all(
      revoked.map(async (id, i) => {
        await sleep((2000 * i) / revoked.length);
        const start = Date.now();
        await untilLanded(() => licenses.revokeLicense(id, admin, 'chaos', { idempotencyKey: `chaos-${i}` }), seen);
        spans.push({ start, end: Date.now() });
      }),
    );
    await sleep(500);
    const killedAt = Date.now();
    await temporal.kill();
    await sleep(5000);
    await temporal.restart();
    const backAt = Date.now();
    await burst;
    // Requests sent while it was down waited (the client retries) or were answered 503, and landed after.
    expect(seen.other).toEqual([]);
    expect(spans.filter((s) => s.start > killedAt && s.start < backAt && s.end > backAt).length).toBeGreaterThan(0);

    await eventually(
      async () => {
        const { rows } = await db.pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM licenses WHERE id = ANY($1) AND state = 'expired'",
          [ids],
        );
        return rows[0]!.n;
      },
      (count) => count === n - revoked.length,
      scale(180_000, 120_000),
      'every unrevoked license expired',
    );
    const transitions = await transitionsOf(db, ids);
    for (const id of ids)
      expect([id, transitions.get(id)]).toEqual([
        id,
        revoked.includes(id) ? ['license.created', 'license.revoked'] : ['license.created', 'license.expired'],
      ]);
    // The workflows agree with the rows.
    const sample = await temporal.client.workflow.getHandle(licenseWorkflowId(ids[1]!)).query('licenseState');
    expect(sample).toMatchObject({ state: 'expired', version: 2 });
    await expectLedgerVerifies(db, keys.dir);
    const waits = spans.map((s) => s.end - s.start).sort((a, b) => a - b);
    process.stderr.write(
      `[chaos temporal] ${n} licenses; during the outage ${seen.unavailable} answer(s) were 503, the longest change waited ${waits[waits.length - 1]} ms\n`,
    );
  }, 400_000);
});

describe('chaos: the API process killed with agents parked, a revocation issued while it is down', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let temporal: OwnTemporal;
  let licenses: LicenseService;
  let stopWorker: (() => Promise<void>) | undefined;
  let api: ChildProcess | undefined;
  let port = 0;

  const startApi = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentina.js'), 'serve'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: db.adminUrl,
        PORT: String(port),
        HOST: '127.0.0.1',
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_TASK_QUEUE: 'chaos-api',
        AGENTINA_KEYS_DIR: keys.dir,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${port}/livez`)).status,
      (s) => s === 200,
      60_000,
      'API up',
    );
    return child;
  };

  beforeAll(async () => {
    db = await createTestDatabase('chaosapi');
    keys = createTestKeysDir();
    temporal = await startOwnTemporal();
    licenses = testLicenseService({
      pool: db.pool,
      temporal: { client: temporal.client, taskQueue: 'chaos-api' },
      keysDir: keys.dir,
    });
    const worker = await createWorker({
      connection: temporal.nativeConnection,
      namespace: 'default',
      taskQueue: 'chaos-api',
      services: testServices({ pool: db.pool, clock: systemClock, keysDir: keys.dir }),
      workflowBundle: { codePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') },
    });
    stopWorker = runWorkerInBackground(worker);
    port = await freePort();
  });

  afterAll(async () => {
    if (api && api.exitCode === null && api.signalCode === null) {
      api.kill('SIGKILL');
      await new Promise((r) => api!.once('exit', r));
    }
    await stopWorker?.();
    await temporal?.stop();
    await db?.drop();
    keys?.remove();
  });

  it('every agent learns of the revocation after reconnecting, with a signed answer', async () => {
    const n = scale(1000, 100);
    const customerId = await createTestCustomer(db.pool);
    const licenseId = await createTermLicense(
      licenses,
      admin,
      customerId,
      new Date(Date.now() + 30 * 86_400_000).toISOString(),
      { maxAgents: n, graceDays: 7 },
    );
    const agents = await insertAgents(db.pool, licenseId, customerId, n);
    const licenseKeys = loadPurposeKeySet(keys.dir, 'license');
    api = await startApi();

    // Each agent long-polls as the real one does: park, and on a dropped connection retry.
    let parked = 0;
    let stop = false;
    const learned = new Map<string, number>();
    const poll = async (a: { agentId: string; credential: string }) => {
      let since = 0;
      while (!stop) {
        try {
          // As the real agent: the credential with a proof of possession of the agent's key.
          const url = `/v1/agent/status?since=${since}&wait=30`;
          const res = await fetch(`http://127.0.0.1:${port}${url}`, {
            headers: {
              authorization: `Bearer ${a.credential}`,
              [PROOF_HEADER]: agentProofFor(a.credential, { method: 'GET', url }),
            },
          });
          if (res.status !== 200) throw new Error(`status ${res.status}`);
          const body = JSON.parse(await res.text()) as {
            status: { payload: { version: number; licenseState: string }; signature: never };
          };
          if (!verifySignature(body.status.payload, body.status.signature, licenseKeys).ok)
            throw new Error('bad signature');
          if (since === 0) parked++;
          since = body.status.payload.version;
          if (body.status.payload.licenseState === 'revoked') {
            learned.set(a.agentId, Date.now());
            return;
          }
        } catch {
          await sleep(250 + Math.random() * 250);
        }
      }
    };
    const polls = agents.map((a) => poll(a));
    await eventually(
      async () => parked,
      (p) => p === n,
      60_000,
      'every agent parked',
    );
    await sleep(500);

    api.kill('SIGKILL');
    await new Promise((r) => api!.once('exit', r));
    // Another replica (here: the service in this process) revokes while this API is down.
    await licenses.revokeLicense(licenseId, admin, 'revoked while the API was down');
    expect(learned.size).toBe(0);
    api = await startApi();
    const restarted = Date.now();
    await eventually(
      async () => learned.size,
      (s) => s === n,
      scale(120_000, 60_000),
      'every agent learned of the revocation',
    );
    stop = true;
    await Promise.all(polls);
    const lags = [...learned.values()].map((t) => t - restarted).sort((a, b) => a - b);
    process.stderr.write(
      `[chaos api] ${n} agents converged ${lags[lags.length - 1]} ms after the API answered again (p50 ${lags[Math.floor(lags.length / 2)]} ms)\n`,
    );

    const transitions = await transitionsOf(db, [licenseId]);
    expect(transitions.get(licenseId)).toEqual(['license.created', 'license.revoked']);
    await expectLedgerVerifies(db, keys.dir);
  }, 300_000);
});
