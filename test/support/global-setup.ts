import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflows } from '../../activities/worker';
import { findOrStartPostgres } from '../../scripts/stack/postgres';
import { freePort } from '../../scripts/stack/ports';
import { startTemporalDevServer } from '../../scripts/stack/temporal';
import { findTemporalCli, findTestServer, ROOT } from '../../scripts/stack/tools';

/**
 * Owns the servers every test file shares: PostgreSQL (DATABASE_URL, the local server, or an
 * embedded one) and one Temporal dev server on free ports. Tests find them through env vars;
 * each test file makes its own database and task queue. The time-skipping server is started per
 * file by @temporalio/testing from the path given here.
 */
export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const log = (line: string) => process.stderr.write(`[test setup] ${line}\n`);
  const dataDir = path.join(ROOT, '.data', 'test');
  mkdirSync(dataDir, { recursive: true });

  const cli = findTemporalCli(log);
  const testServer = findTestServer(log);
  const pg = await findOrStartPostgres({ databaseUrl: process.env.DATABASE_URL, dataDir, log });

  const port = await freePort();
  const temporal = await startTemporalDevServer({
    cli,
    host: '127.0.0.1',
    port,
    namespace: 'default',
    logFile: path.join(dataDir, 'temporal.log'),
  });

  const bundle = await bundleWorkflows();
  const bundlePath = path.join(dataDir, `workflow-bundle-${process.pid}.js`);
  writeFileSync(bundlePath, bundle.code);

  process.env.AGENTINA_TEST_PG_ADMIN_URL = pg.adminUrl;
  process.env.AGENTINA_TEST_TEMPORAL_ADDRESS = `127.0.0.1:${port}`;
  process.env.AGENTINA_TEST_TEMPORAL_CLI = cli;
  process.env.AGENTINA_TEST_TIME_SKIPPING_SERVER = testServer;
  process.env.AGENTINA_TEST_WORKFLOW_BUNDLE = bundlePath;

  (globalThis as Record<string, unknown>).__agentinaTestStack = { pg, temporal, bundlePath };
  log(`PostgreSQL: ${pg.source}; Temporal dev server 127.0.0.1:${port}; ready in ${Date.now() - started} ms`);
}
