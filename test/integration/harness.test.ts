import { Worker } from '@temporalio/worker';
import { bundleTestWorkflows } from '../support/workflow-bundle';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { connectTestTemporal, runWorkerInBackground, type TestTemporal } from '../support/temporal';

/** (a) A workflow on the real dev server runs an activity that writes a row to the real PostgreSQL. */
describe('harness: workflow → activity → PostgreSQL', () => {
  let db: TestDatabase;
  let t: TestTemporal;
  let stopWorker: () => Promise<void>;

  beforeAll(async () => {
    db = await createTestDatabase('harness');
    await db.adminPool.query(`
      SET ROLE agentina_owner;
      CREATE TABLE agentina.harness_rows (id bigserial PRIMARY KEY, workflow_id text NOT NULL, note text NOT NULL);
      GRANT SELECT, INSERT ON agentina.harness_rows TO agentina_app;
      GRANT USAGE ON SEQUENCE agentina.harness_rows_id_seq TO agentina_app;
      RESET ROLE;`);
    t = await connectTestTemporal('harness');
    const workflowBundle = await bundleTestWorkflows(require.resolve('../support/workflows/harness'));
    const worker = await Worker.create({
      connection: t.nativeConnection,
      taskQueue: t.taskQueue,
      workflowBundle,
      activities: {
        async insertHarnessRow(input: { workflowId: string; note: string }): Promise<number> {
          const { rows } = await db.pool.query<{ id: string }>(
            'INSERT INTO harness_rows (workflow_id, note) VALUES ($1, $2) RETURNING id',
            [input.workflowId, input.note],
          );
          return Number(rows[0]!.id);
        },
      },
    });
    stopWorker = runWorkerInBackground(worker);
  });

  afterAll(async () => {
    await stopWorker?.();
    await t?.close();
    await db?.drop();
  });

  it('writes the row as the application role and the row is there afterwards', async () => {
    const workflowId = `harness/${Date.now()}`;
    const id = await t.client.workflow.execute('recordRow', {
      taskQueue: t.taskQueue,
      workflowId,
      args: ['hello from a workflow'],
    });
    const { rows } = await db.adminPool.query('SELECT id, workflow_id, note FROM agentina.harness_rows');
    expect(rows).toEqual([{ id: String(id), workflow_id: workflowId, note: 'hello from a workflow' }]);
    const history = await t.client.workflow.getHandle(workflowId).fetchHistory();
    const kinds = (history.events ?? []).map((e) => e.activityTaskCompletedEventAttributes).filter(Boolean);
    expect(kinds).toHaveLength(1);
  });
});
