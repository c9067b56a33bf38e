import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { bundleTestWorkflows } from '../support/workflow-bundle';
import { testEnv } from '../support/env';
import { quietTemporalRuntime } from '../support/temporal';

/** (b) A 30-day timer completes on the time-skipping server, which jumps its clock. */
describe('harness: time-skipping server', () => {
  let env: TestWorkflowEnvironment;

  beforeAll(async () => {
    quietTemporalRuntime();
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: testEnv('AGENTINA_TEST_TIME_SKIPPING_SERVER') } },
    });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  it('sleeps 30 days of workflow time', async () => {
    const workflowBundle = await bundleTestWorkflows(require.resolve('../support/workflows/harness'));
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'time-skipping',
      workflowBundle,
    });
    const before = await env.currentTimeMs();
    const result = await worker.runUntil(
      env.client.workflow.execute('sleepThirtyDays', { taskQueue: 'time-skipping', workflowId: 'sleep-30d' }),
    );
    const skipped = (await env.currentTimeMs()) - before;
    expect(result).toBe('woke');
    expect(skipped).toBeGreaterThanOrEqual(30 * 24 * 3600 * 1000);
  });
});
