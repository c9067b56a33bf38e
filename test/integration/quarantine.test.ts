import { WorkflowUpdateFailedError } from '@temporalio/client';
import { createAgentActivities } from '../../activities/agent-activities';
import { systemClock } from '../../protocol';
import { quarantinePhaseQuery, releaseAgentUpdate, type AgentReleaseRequest } from '../../workflows/agent-quarantine';
import { buildTestApp, testConfig, testServices } from '../support/app';
import { createAgentWithLicense, createStaff, eventually, type Staff } from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestKeysDir } from '../support/license-helpers';
import { connectTestTemporal, type TestTemporal, testTemporalDeps, runTestWorker } from '../support/temporal';

/** The agentQuarantine workflow and its activities: idempotency, who may release, the admin fallback. */
describe('agentQuarantine', () => {
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let keysDir: string;
  let stopWorker: () => Promise<void>;
  let built: Awaited<ReturnType<typeof buildTestApp>>;
  let staff: Staff;

  const agentRow = async (id: string) =>
    (await db.adminPool.query('SELECT status, status_version FROM agentina.agents WHERE id = $1', [id])).rows[0];
  const auditCount = async (id: string, action: string) =>
    Number(
      (
        await db.adminPool.query('SELECT count(*) FROM agentina.audit_events WHERE subject_id = $1 AND action = $2', [
          id,
          action,
        ])
      ).rows[0].count,
    );
  const feedCount = async (id: string) =>
    Number(
      (await db.adminPool.query('SELECT count(*) FROM agentina.status_feed WHERE agent_id = $1', [id])).rows[0].count,
    );
  const start = (agentId: string) =>
    t.client.workflow.start('agentQuarantine', {
      taskQueue: t.taskQueue,
      workflowId: `agent/${agentId}`,
      workflowIdConflictPolicy: 'USE_EXISTING',
      args: [{ agentId, reason: 'integrity_mismatch', detectedAt: new Date().toISOString() }],
    });

  beforeAll(async () => {
    db = await createTestDatabase('quarantine');
    staff = createStaff(db.pool, systemClock);
    keys = createTestKeysDir();
    keysDir = keys.dir;
    t = await connectTestTemporal('quarantine');
    stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir });
    const temporal = testTemporalDeps(t.client, t.taskQueue);
    built = await buildTestApp({ pool: db.pool, temporal, config: testConfig({ AGENTINA_KEYS_DIR: keysDir }) });
  });

  afterAll(async () => {
    await built?.close();
    await stopWorker?.();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  it('a retried quarantine activity writes nothing twice (idempotency key = workflow id + run + step)', async () => {
    const a = await createAgentWithLicense(db.pool);
    const acts = createAgentActivities(testServices({ pool: db.pool, clock: systemClock, keysDir }));
    const input = {
      agentId: a.agentId,
      reason: 'integrity_mismatch' as const,
      detectedAt: new Date().toISOString(),
      idempotencyKey: `agent/${a.agentId}/run-1#quarantine`,
    };
    expect(await acts.quarantineAgent(input)).toEqual({ quarantined: true });
    expect(await acts.quarantineAgent(input)).toEqual({ quarantined: true });
    expect(await agentRow(a.agentId)).toEqual({ status: 'quarantined', status_version: '1' });
    expect(await auditCount(a.agentId, 'agent.quarantined')).toBe(1);
    expect(await feedCount(a.agentId)).toBe(1);

    const release = {
      agentId: a.agentId,
      actor: { kind: 'admin' as const, id: 'adm_idempotent0000000000' },
      idempotencyKey: `agent/${a.agentId}/run-1#release`,
    };
    expect(await acts.releaseAgent(release)).toEqual({ released: true, status: 'active' });
    expect(await acts.releaseAgent(release)).toEqual({ released: true, status: 'active' });
    expect(await agentRow(a.agentId)).toEqual({ status: 'active', status_version: '2' });
    expect(await auditCount(a.agentId, 'agent.released')).toBe(1);
  });

  it('a second detection while the workflow runs joins it instead of starting a twin', async () => {
    const a = await createAgentWithLicense(db.pool);
    const first = await start(a.agentId);
    const second = await start(a.agentId);
    expect(second.firstExecutionRunId).toBe(first.firstExecutionRunId);
    await eventually(async () => (await first.query(quarantinePhaseQuery)) === 'quarantined', 'quarantined phase');
    expect(await auditCount(a.agentId, 'agent.quarantined')).toBe(1);
  });

  it('refuses a release Update that does not carry an admin actor', async () => {
    const a = await createAgentWithLicense(db.pool);
    const handle = await start(a.agentId);
    await eventually(async () => (await handle.query(quarantinePhaseQuery)) === 'quarantined', 'quarantined phase');
    for (const actor of [{ kind: 'customer', id: 'usr_x' }, { kind: 'admin', id: '' }, undefined]) {
      await expect(
        handle.executeUpdate(releaseAgentUpdate, { args: [{ actor } as unknown as AgentReleaseRequest] }),
      ).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    }
    expect((await agentRow(a.agentId)).status).toBe('quarantined');
    const res = await built.app.inject({
      method: 'POST',
      url: `/v1/admin/agents/${a.agentId}/release`,
      headers: await staff.admin(),
      payload: {},
    });
    expect(res.statusCode).toBe(200);
    expect(await handle.result()).toEqual({ agentId: a.agentId, outcome: 'released' });
  });

  it('an agent quarantined with no workflow waiting (e.g. terminated by an operator) is still released, audited', async () => {
    const a = await createAgentWithLicense(db.pool);
    const handle = await start(a.agentId);
    await eventually(async () => (await handle.query(quarantinePhaseQuery)) === 'quarantined', 'quarantined phase');
    await handle.terminate('operator cleanup');
    const res = await built.app.inject({
      method: 'POST',
      url: `/v1/admin/agents/${a.agentId}/release`,
      headers: await staff.admin('fallback'),
      payload: {},
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().status).toBe('active');
    const audit = await db.adminPool.query(
      `SELECT actor_kind, actor_id FROM agentina.audit_events WHERE subject_id = $1 AND action = 'agent.released'`,
      [a.agentId],
    );
    expect(audit.rows).toEqual([{ actor_kind: 'admin', actor_id: staff.adminId('fallback') }]);
  });

  it('a workflow for an agent that is already deregistered ends without touching it', async () => {
    const a = await createAgentWithLicense(db.pool);
    await db.adminPool.query(`UPDATE agentina.agents SET status = 'deregistered' WHERE id = $1`, [a.agentId]);
    const handle = await start(a.agentId);
    expect(await handle.result()).toEqual({ agentId: a.agentId, outcome: 'not_quarantinable' });
    expect(await auditCount(a.agentId, 'agent.quarantined')).toBe(0);
  });
});
