import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { createActivities, type ActivityServices } from '../activities/create-activities';
import { openServices } from '../services/process';
import { temporalConnectionOptions } from '../services/temporal';
import { installTemporalMetrics, startWorkerMetrics } from './metrics';
import { ensureSchedules, SCHEDULES } from './schedules';

export const WORKFLOWS_PATH = require.resolve('../workflows');

/** Bundles workflows/ once; the bundle is reused by every Worker built in this process. */
export async function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error: (m: string) => console.error(m), log() {} },
  });
}

export type CreateWorkerInput = {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  services: ActivityServices;
  workflowBundle: WorkflowBundleWithSourceMap | { codePath: string };
  maxConcurrentActivityTaskExecutions?: number;
};

export async function createWorker(input: CreateWorkerInput): Promise<Worker> {
  return Worker.create({
    connection: input.connection,
    namespace: input.namespace,
    taskQueue: input.taskQueue,
    workflowBundle: input.workflowBundle,
    activities: createActivities(input.services),
    maxConcurrentActivityTaskExecutions: input.maxConcurrentActivityTaskExecutions ?? 50,
  });
}

/** Reconcile once the worker polls (queries need a worker); its outcome goes to the log, its repairs to the audit. */
async function reconcileAtStart(services: Pick<ActivityServices, 'reconcile'>, logger: Logger): Promise<void> {
  try {
    const r = await services.reconcile.run({ dryRun: false });
    const level = r.failed > 0 || r.findings.some((f) => f.problem === 'unanswered') ? 'warn' : 'info';
    logger[level](
      {
        licenses: r.licenses,
        agents: r.agents,
        repaired: r.repaired,
        failed: r.failed,
        ms: r.ms,
        findings: r.findings.slice(0, 50),
      },
      'reconcile at worker start',
    );
  } catch (err) {
    logger.warn({ err }, 'reconcile at worker start failed; the agentina-reconcile Schedule tries again');
  }
}

/** PostgreSQL connections of a worker process: transitions run as local activities in it. */
export const WORKER_POOL_SIZE = 20;

/**
 * The worker process: one worker on the configured task queue. Temporal's runtime traps
 * SIGINT/SIGTERM and drains the worker gracefully; then the pool is closed.
 */
export async function runWorkerProcess(config: Config, logger: Logger): Promise<void> {
  const metricsAt = config.metrics.worker;
  // The SDK's metrics come from its core runtime, which must be installed before the first connection.
  const temporalMetricsUrl = metricsAt ? await installTemporalMetrics() : undefined;
  const opened = openServices(config, { applicationName: 'agentina-worker', poolSize: WORKER_POOL_SIZE, logger });
  const { temporal, services } = opened;
  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  let metrics: Awaited<ReturnType<typeof startWorkerMetrics>> | undefined;
  try {
    if (metricsAt) {
      metrics = await startWorkerMetrics({
        config,
        listener: metricsAt,
        services,
        pool: opened.pool,
        client: temporal.client,
        schedules: SCHEDULES.map((make) => make(config)),
        temporalMetricsUrl,
        logger,
      });
      logger.info({ url: `${metrics.url}/metrics` }, 'worker metrics listening');
    }
    const scheduled = await ensureSchedules(temporal.client, config);
    logger.info({ schedules: scheduled }, 'schedules in place');
    const workflowBundle = await bundleWorkflows();
    const worker = await createWorker({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      services,
      workflowBundle,
    });
    logger.info({ taskQueue: config.temporal.taskQueue, namespace: config.temporal.namespace }, 'worker running');
    // Starts a delivery workflow for every webhook delivery the audit fan-out records.
    const stopDispatcher = services.webhooks.startDispatcher();
    try {
      const running = worker.run();
      // After a restore or a lost Temporal store, lifecycles come back from the rows before anything else asks.
      void reconcileAtStart(services, logger);
      await running;
    } finally {
      await stopDispatcher();
    }
    logger.info('worker stopped');
  } finally {
    metrics?.stopWatch();
    await metrics?.close();
    await connection.close();
    await opened.close();
  }
}
