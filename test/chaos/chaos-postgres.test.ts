import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, type Pool } from 'pg';
import { appUrlFor } from '../../config';
import { createPool, migrate } from '../../db';
import { PROOF_HEADER, systemClock } from '../../protocol';
import { licenseWorkflowId } from '../../workflows/license-contract';
import { withDatabase } from '../../scripts/stack/postgres';
import { insertAgents } from '../support/activation-fixtures';
import { agentProofFor } from '../support/agent-keys';
import { createStaff } from '../support/agent-server-fixtures';
import { startEmbeddedChild } from '../support/embedded-postgres';
import {
  createTermLicense,
  createTestCustomer,
  createTestKeysDir,
  testLicenseService,
} from '../support/license-helpers';
import { startTestServer } from '../support/server';
import { connectTestTemporal, runTestWorker, type TestTemporal } from '../support/temporal';
import { admin, expectLedgerVerifies, scale, sleep, transitionsOf } from './chaos-support';

describe('chaos: PostgreSQL restarted during a burst of revokes and renewals', () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'agentina-chaos-pg-'));
  let pg: { url: string; stop(): Promise<void> } | undefined;
  let pool: Pool;
  let adminPool: Pool;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let stopWorker: (() => Promise<void>) | undefined;
  let api: Awaited<ReturnType<typeof startTestServer>> | undefined;

  beforeAll(async () => {
    // PostgreSQL runs as its own OS user, which must reach the data directory.
    chmodSync(base, 0o755);
    pg = await startEmbeddedChild(path.join(base, 'pg'));
    const c = new Client({ connectionString: pg.url });
    await c.connect();
    await c.query('CREATE DATABASE chaos');
    await c.end();
    const dbUrl = withDatabase(pg.url, 'chaos');
    await migrate(dbUrl);
    pool = createPool(appUrlFor(dbUrl), { max: 10 });
    adminPool = createPool(dbUrl, { max: 2 });
    keys = createTestKeysDir();
    t = await connectTestTemporal('chaospg');
    stopWorker = await runTestWorker(t, { pool, clock: systemClock, keysDir: keys.dir });
    api = await startTestServer({ pool, env: { AGENTINA_KEYS_DIR: keys.dir, TEMPORAL_TASK_QUEUE: t.taskQueue } });
  });

  afterAll(async () => {
    await api?.close();
    await stopWorker?.();
    await t?.close();
    await pool?.end();
    await adminPool?.end();
    await pg?.stop();
    keys?.remove();
    rmSync(base, { recursive: true, force: true });
  });

  it('the API answers 503 (never 500, never 429) while it is down; every change lands once after, every agent is served', async () => {
    const n = scale(200, 20);
    // More agents behind this one address than its failed-authentication budget (30) holds places.
    const fleet = scale(300, 60);
    const customerId = await createTestCustomer(pool);
    const licenses = testLicenseService({
      pool,
      temporal: { client: t.client, taskQueue: t.taskQueue },
      keysDir: keys.dir,
    });
    const farOff = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const ids: string[] = [];
    for (let i = 0; i < n; i++)
      ids.push(await createTermLicense(licenses, admin, customerId, farOff, { graceDays: 3 }));
    const fleetLicense = await createTermLicense(licenses, admin, customerId, farOff, { maxAgents: fleet });
    const agents = await insertAgents(pool, fleetLicense, customerId, fleet);
    const agentStatuses = new Map<number, number>();
    /** One status request as the agent makes it (credential and proof), from the same address as the admin. */
    const askStatus = async (a: { credential: string }): Promise<number> => {
      const url = '/v1/agent/status?wait=0';
      const res = await fetch(`${api!.baseUrl}${url}`, {
        headers: {
          authorization: `Bearer ${a.credential}`,
          [PROOF_HEADER]: agentProofFor(a.credential, { method: 'GET', url }),
        },
      }).catch(() => null);
      const code = res?.status ?? 0;
      await res?.arrayBuffer();
      agentStatuses.set(code, (agentStatuses.get(code) ?? 0) + 1);
      return code;
    };
    // Every agent has been in contact before the outage.
    for (const a of agents) expect(await askStatus(a)).toBe(200);
    const headers = await createStaff(pool, systemClock).admin();
    const renewedTo = new Date(Date.now() + 400 * 86_400_000).toISOString();
    const statuses = new Map<number, number>();
    const send = async (id: string, i: number) => {
      const revoke = i % 2 === 0;
      for (;;) {
        const res = await api!.app.inject({
          method: 'POST',
          url: `/v1/admin/licenses/${id}/${revoke ? 'revoke' : 'renew'}`,
          headers: { ...headers, 'idempotency-key': `chaos-pg-${i}` },
          payload: revoke ? { reason: 'chaos' } : { expiresAt: renewedTo },
        });
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode === 200) return;
        // 503: the database is away. Anything else (a 429 among them) fails the scenario.
        if (res.statusCode !== 503) throw new Error(`${res.statusCode}: ${res.body}`);
        await sleep(300);
      }
    };
    // The fleet keeps asking through the outage, all at once, until each is answered after it.
    let restartedAt = Infinity;
    const fleetAsks = Promise.all(
      agents.map(async (a) => {
        for (;;) {
          const asked = Date.now();
          if ((await askStatus(a)) === 200 && asked > restartedAt) return;
          await sleep(300);
        }
      }),
    );
    const burst = Promise.all(
      ids.map(async (id, i) => {
        await sleep((3000 * i) / ids.length);
        await send(id, i);
      }),
    );
    await sleep(700);
    await pg!.stop();
    await sleep(4000);
    pg = await startEmbeddedChild(path.join(base, 'pg'));
    restartedAt = Date.now();
    await burst;
    await fleetAsks;
    process.stderr.write(
      `[chaos pg] ${n} changes; answers by status: ${JSON.stringify(Object.fromEntries(statuses))}; ${fleet} agents' status answers by status: ${JSON.stringify(Object.fromEntries(agentStatuses))}\n`,
    );
    expect(statuses.get(503)).toBeGreaterThan(0);
    expect([...statuses.keys()].filter((c) => ![200, 503].includes(c))).toEqual([]);
    // The agents: answered (from what the API holds) or 503 while it was down, never refused; all served after.
    expect([...agentStatuses.keys()].filter((c) => ![200, 503].includes(c))).toEqual([]);

    const transitions = await transitionsOf({ pool }, ids);
    ids.forEach((id, i) =>
      expect([id, transitions.get(id)]).toEqual([
        id,
        ['license.created', i % 2 === 0 ? 'license.revoked' : 'license.renewed'],
      ]),
    );
    const { rows } = await pool.query<{ id: string; state: string; version: string }>(
      'SELECT id, state, version FROM licenses WHERE id = ANY($1)',
      [ids],
    );
    expect(rows.every((r) => r.version === '2')).toBe(true);
    const h = t.client.workflow.getHandle(licenseWorkflowId(ids[1]!));
    expect(await h.query('licenseState')).toMatchObject({ state: 'active', version: 2, expiresAt: renewedTo });
    await expectLedgerVerifies({ adminPool }, keys.dir);
  }, 300_000);
});
