/**
 * bench:lifecycles' ceiling worker, in its own process as the lifecycle worker is: runs
 * ceilingLifecycle (test/support/workflows/ceiling.ts) with SDK default pollers; its one local
 * activity inserts one row into bench_ceiling. One JSON argument: { address, taskQueue, databaseUrl }.
 */
import { NativeConnection, Runtime, DefaultLogger, Worker } from '@temporalio/worker';
import { createPool } from '../../db';
import { WORKER_POOL_SIZE } from '../../worker';
import { bundleTestWorkflows } from '../support/workflow-bundle';
import type { CeilingActivities } from '../support/workflows/ceiling';
import { serveWorkerProcess } from '../support/worker-process';

serveWorkerProcess(async () => {
  const args = JSON.parse(process.argv[2] ?? '{}') as { address: string; taskQueue: string; databaseUrl: string };
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const pool = createPool(args.databaseUrl, { applicationName: 'bench-ceiling-worker', max: WORKER_POOL_SIZE });
  const connection = await NativeConnection.connect({ address: args.address });
  const activities: CeilingActivities = {
    async writeExpiry({ id, expiresAt }) {
      await pool.query('INSERT INTO bench_ceiling (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [
        id,
        new Date(expiresAt),
      ]);
    },
  };
  const worker = await Worker.create({
    connection,
    taskQueue: args.taskQueue,
    workflowBundle: await bundleTestWorkflows(require.resolve('../support/workflows/ceiling.ts')),
    activities,
  });
  return {
    worker,
    async close() {
      await connection.close();
      await pool.end();
    },
  };
});
