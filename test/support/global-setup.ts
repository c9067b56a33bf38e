import { startTestStack } from './stack';
import { prepareSoftHsm } from './softhsm';

/**
 * Owns the servers every test file shares (see stack.ts). Each test file makes its own database
 * and task queue; the time-skipping server is started per file by @temporalio/testing.
 */
export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const log = (line: string) => process.stderr.write(`[test setup] ${line}\n`);
  prepareSoftHsm();
  const stack = await startTestStack(log);
  (globalThis as Record<string, unknown>).__agentinaTestStack = stack;
  log(
    `PostgreSQL: ${stack.pg.source}; Temporal dev server ${process.env.AGENTINA_TEST_TEMPORAL_ADDRESS}; ready in ${Date.now() - started} ms`,
  );
}
