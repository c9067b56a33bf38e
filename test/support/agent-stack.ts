import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import path from 'node:path';
import { systemClock, type Clock } from '../../protocol';
import { buildAgentRelease } from '../../scripts/build-agent-manifest';
import { testAuthenticate } from './activation-fixtures';
import { makeSelfSignedCert } from './agent-fakes';
import { buildTestApp, testConfig } from './app';
import { createTestDatabase, type TestDatabase } from './db';
import { testEnv } from './env';
import { createTestCustomer, createTestKeysDir } from './license-helpers';
import { connectTestTemporal, type TestTemporal, runTestWorker } from './temporal';
import { makePublicDir } from './agent-user';

/**
 * The real control plane for agent end-to-end tests and the agent benchmark: a migrated
 * database, the worker on the shared Temporal dev server, and the API served over HTTPS (TLS 1.3
 * only, self-signed certificate) on a free port; plus the signed runtime manifest, the agent's
 * trusted keys and the CA certificate in a world-readable directory for the agent user.
 */
export type AgentStack = Awaited<ReturnType<typeof startAgentStack>>;
export const E2E_ADMIN = 'admin:adm_agente2eadmin00000001';

/** `clock` is the API's (tests move it with the agent's); the worker keeps the wall clock. */
export async function startAgentStack(label: string, opts: { clock?: Clock; env?: Record<string, string> } = {}) {
  const db: TestDatabase = await createTestDatabase(label);
  const t: TestTemporal = await connectTestTemporal(label);
  const keys = createTestKeysDir();
  const stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
  const config = testConfig({
    TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
    TEMPORAL_TASK_QUEUE: t.taskQueue,
    AGENTINA_KEYS_DIR: keys.dir,
    LOG_LEVEL: 'warn',
    ...opts.env,
  });
  const harness = await buildTestApp({
    pool: db.pool,
    config,
    authenticate: testAuthenticate(db.pool),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  const cert = makeSelfSignedCert();
  const server: Server = createServer({ cert: cert.cert, key: cert.key, minVersion: 'TLSv1.3' }, (req, res) =>
    harness.app.routing(req, res),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;

  const pub = makePublicDir('agent-e2e-pub');
  const built = buildAgentRelease({ keysDir: keys.dir, outDir: pub });
  const caFile = path.join(pub, 'ca.pem');
  writeFileSync(caFile, cert.cert, { mode: 0o644 });
  const customerId = await createTestCustomer(db.pool, `Agent ${label}`);

  const admin = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => {
    const res = await harness.app.inject({
      method,
      url,
      headers: { 'x-test-principal': E2E_ADMIN },
      ...(payload ? { payload } : {}),
    });
    if (res.statusCode >= 300) throw new Error(`${method} ${url} → ${res.statusCode}: ${res.body}`);
    return res.json();
  };

  return {
    db,
    url,
    keysDir: keys.dir,
    pub,
    /** The release bundle the agent user runs (spawnAgent's `entry`). */
    entry: built.entry,
    manifestFile: built.manifestFile,
    keysFile: built.trustedKeysFile,
    caFile,
    /** The API's certificate and key (a test's man in the middle presents the same). */
    cert,
    customerId,
    admin,
    /** `agentina-agent activate` in development mode against this stack (or `server`, a man in the middle). */
    activateArgs(p: { token: string; prefix: string; server?: string }): string[] {
      const server = p.server ?? url;
      const pinned = ['--keys', built.trustedKeysFile, '--ca', caFile];
      return ['activate', '--user', '--server', server, '--token', p.token, '--prefix', p.prefix, ...pinned];
    },
    async createLicense(): Promise<string> {
      const r = await admin('POST', '/v1/admin/licenses', {
        customerId,
        plan: 'pro',
        maxAgents: 3,
        term: { days: 30 },
        graceDays: 7,
      });
      return r.license.id as string;
    },
    async issueToken(licenseId: string): Promise<string> {
      const r = await admin('POST', '/v1/admin/activation-tokens', { licenseId });
      return r.token as string;
    },
    async close(): Promise<void> {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await harness.close();
      await stopWorker();
      await t.close();
      await db.drop();
      keys.remove();
    },
  };
}
