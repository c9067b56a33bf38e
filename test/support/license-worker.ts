import { testServices } from '../support/app';
/**
 * A worker in a child process, for tests that SIGKILL it mid-lifecycle. One JSON argument:
 * { address, taskQueue, appDatabaseUrl, keysDir, bundlePath, killAfterAction? }. Also the bench's
 * worker process (API and worker apart, as deployed). With
 * killAfterAction, the process kills itself right after that transition's transaction commits and
 * before the activity reports back: the worst moment for a lost or doubled transition.
 */
import { NativeConnection, Runtime, DefaultLogger, Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { WORKER_POOL_SIZE } from '../../worker';
import { createPool } from '../../db';
import { systemClock } from '../../protocol';
import type { LicenseTransitionInput } from '../../activities/license-activities';
import { serveWorkerProcess } from './worker-process';

type Args = {
  address: string;
  taskQueue: string;
  appDatabaseUrl: string;
  keysDir: string;
  bundlePath: string;
  killAfterAction?: string;
  /** More environment for its services (WEBHOOK_ALLOW_HOSTS, …). */
  env?: Record<string, string>;
  pollers?: { workflow: number; nonStickyRatio: number };
};

serveWorkerProcess(async () => {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const pool = createPool(args.appDatabaseUrl, { applicationName: 'license-worker-child', max: WORKER_POOL_SIZE });
  const connection = await NativeConnection.connect({ address: args.address });
  const activities = createActivities(
    testServices({ pool, clock: systemClock, keysDir: args.keysDir, ...(args.env ? { env: args.env } : {}) }),
  );
  const worker = await Worker.create({
    connection,
    taskQueue: args.taskQueue,
    workflowBundle: { codePath: args.bundlePath },
    ...(args.pollers
      ? {
          maxConcurrentWorkflowTaskPolls: args.pollers.workflow,
          nonStickyToStickyPollRatio: args.pollers.nonStickyRatio,
        }
      : {}),
    activities: {
      ...activities,
      async applyLicenseTransition(input: LicenseTransitionInput) {
        const result = await activities.applyLicenseTransition(input);
        if (input.action === args.killAfterAction) {
          process.stdout.write(`killing after ${input.action} v${result.version}\n`);
          process.kill(process.pid, 'SIGKILL');
          await new Promise(() => undefined);
        }
        return result;
      },
    },
  });
  return {
    worker,
    async close() {
      await connection.close();
      await pool.end();
    },
  };
});
