import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Pool } from 'pg';
import { createActivities } from '../../activities';
import { systemClock } from '../../protocol';
import { SKIPPED_TIME_PROOF_AGE_MS, testServices } from './app';
import { testEnv } from './env';
import { runWorkerInBackground } from './temporal';

/**
 * A worker in this process on the time-skipping server: the production workflow bundle and
 * activities, with update-origin proofs accepted however far workflow time has skipped ahead.
 * Returns its stop.
 */
export async function runSkippedTimeWorker(input: {
  server: TestWorkflowEnvironment;
  pool: Pool;
  keysDir: string;
  taskQueue: string;
  /** More environment for the activities' services (WEBHOOK_ALLOW_HOSTS, …). */
  env?: Record<string, string>;
}): Promise<() => Promise<void>> {
  const worker = await Worker.create({
    connection: input.server.nativeConnection,
    taskQueue: input.taskQueue,
    workflowBundle: { codePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') },
    activities: createActivities(
      testServices({
        pool: input.pool,
        clock: systemClock,
        keysDir: input.keysDir,
        updateOriginMaxAgeMs: SKIPPED_TIME_PROOF_AGE_MS,
        ...(input.env ? { env: input.env } : {}),
      }),
    ),
  });
  return runWorkerInBackground(worker);
}
