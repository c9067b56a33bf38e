import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger, makeTelemetryFilterString, type Worker } from '@temporalio/worker';
import { testServices } from './app';
import { createWorker } from '../../worker';
import type { TemporalDeps } from '../../services/temporal';
import { testEnv } from './env';

let runtimeInstalled = false;
/** Warnings a test provokes on purpose: matched lines are kept for its assertions, not printed. */
const expected = new Set<{ pattern: RegExp; lines: string[] }>();
const printer = new DefaultLogger('WARN');

/**
 * Keeps the SDK quiet in test output unless something is wrong: the Rust core's warnings are
 * forwarded to this logger (rather than printed by the core), so a test that provokes one on
 * purpose can claim it with expectTemporalWarnings and a passing run reads as passing.
 */
export function quietTemporalRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger('WARN', (entry) => {
      const line = `${entry.message} ${entry.meta ? JSON.stringify(entry.meta) : ''}`;
      for (const e of expected) {
        if (e.pattern.test(line)) {
          e.lines.push(line);
          return;
        }
      }
      printer.log(entry.level, entry.message, entry.meta);
    }),
    telemetryOptions: { logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }) } },
  });
}

/**
 * Claims the SDK warnings matching `pattern` from now until `release()`: they are collected in
 * `lines` (for the test to assert) instead of being printed as if something had gone wrong.
 */
export function expectTemporalWarnings(pattern: RegExp): { lines: string[]; release(): void } {
  quietTemporalRuntime();
  const e = { pattern, lines: [] as string[] };
  expected.add(e);
  return { lines: e.lines, release: () => expected.delete(e) };
}

/** The API's Temporal dependency over a test client; its health ping always passes. */
export function testTemporalDeps(client: Client, taskQueue: string): TemporalDeps {
  return { client, taskQueue, ping: async () => undefined, close: async () => undefined };
}

export type TestTemporal = {
  address: string;
  namespace: string;
  taskQueue: string;
  connection: Connection;
  nativeConnection: NativeConnection;
  client: Client;
  workflowBundle: { codePath: string };
  close(): Promise<void>;
};

/** Connections to the shared dev server and a task queue of this test file's own. */
export async function connectTestTemporal(label = 'test'): Promise<TestTemporal> {
  quietTemporalRuntime();
  const address = testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS');
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  return {
    address,
    namespace: 'default',
    taskQueue: `${label}-${randomBytes(4).toString('hex')}`,
    connection,
    nativeConnection,
    client: new Client({ connection, namespace: 'default' }),
    workflowBundle: { codePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') },
    async close() {
      await connection.close();
      await nativeConnection.close();
    },
  };
}

/** Runs `worker` in the background; the returned function shuts it down and waits. */
export function runWorkerInBackground(worker: Worker): () => Promise<void> {
  const running = worker.run();
  return async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running;
  };
}

/** The production worker on a test's own task queue; the returned function stops it. */
export async function runTestWorker(
  t: TestTemporal,
  deps: Parameters<typeof testServices>[0],
): Promise<() => Promise<void>> {
  const worker = await createWorker({
    connection: t.nativeConnection,
    namespace: t.namespace,
    taskQueue: t.taskQueue,
    services: testServices(deps),
    workflowBundle: t.workflowBundle,
  });
  return runWorkerInBackground(worker);
}
