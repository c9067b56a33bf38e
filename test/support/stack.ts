import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflows } from '../../worker';
import { findOrStartPostgres, type PostgresServer } from '../../scripts/stack/postgres';
import { freePort } from '../../scripts/stack/ports';
import type { ManagedProcess } from '../../scripts/stack/processes';
import { startTemporalDevServer } from '../../scripts/stack/temporal';
import {
  ensurePythonPyotp,
  ensurePythonStandardWebhooks,
  ensurePythonTuf,
  findTemporalCli,
  findTestServer,
  ROOT,
} from '../../scripts/stack/tools';

export type TestStack = { pg: PostgresServer; temporal: ManagedProcess; bundlePath: string; stop(): Promise<void> };

/**
 * Provisions what tests and benchmarks share: PostgreSQL (DATABASE_URL, the local server, or
 * embedded), one Temporal dev server on a free port, and the production workflow bundle; then
 * publishes them in the AGENTINA_TEST_* environment variables read by test/support/env.ts.
 */
export async function startTestStack(log: (line: string) => void): Promise<TestStack> {
  const dataDir = path.join(ROOT, '.data', 'test');
  mkdirSync(dataDir, { recursive: true });
  const cli = findTemporalCli(log);
  process.env.AGENTINA_TEST_PYTHON_TUF = ensurePythonTuf(log);
  process.env.AGENTINA_TEST_PYTHON_PYOTP = ensurePythonPyotp(log);
  process.env.AGENTINA_TEST_PYTHON_WEBHOOKS = ensurePythonStandardWebhooks(log);
  const testServer = findTestServer(log);
  const pg = await findOrStartPostgres({ databaseUrl: process.env.DATABASE_URL, dataDir, log });
  const port = await freePort();
  const temporal = await startTemporalDevServer({
    cli,
    host: '127.0.0.1',
    port,
    namespace: 'default',
    logFile: path.join(dataDir, `temporal-${port}.log`),
  });
  const bundle = await bundleWorkflows();
  const bundlePath = path.join(dataDir, `workflow-bundle-${process.pid}.js`);
  writeFileSync(bundlePath, bundle.code);
  process.env.AGENTINA_TEST_PG_ADMIN_URL = pg.adminUrl;
  process.env.AGENTINA_TEST_TEMPORAL_ADDRESS = `127.0.0.1:${port}`;
  process.env.AGENTINA_TEST_TEMPORAL_CLI = cli;
  process.env.AGENTINA_TEST_TIME_SKIPPING_SERVER = testServer;
  process.env.AGENTINA_TEST_WORKFLOW_BUNDLE = bundlePath;
  return {
    pg,
    temporal,
    bundlePath,
    async stop() {
      await temporal.stop();
      await pg.stop();
      const { rmSync } = await import('node:fs');
      rmSync(bundlePath, { force: true });
    },
  };
}
