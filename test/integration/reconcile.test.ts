import { TypedSearchAttributes } from '@temporalio/common';
import { systemClock, type Actor } from '../../protocol';
import { createReconcileService, type ReconcileService } from '../../services/operations/reconcile-service';
import { agentWorkflowId, quarantinePhaseQuery } from '../../workflows/agent-quarantine';
import {
  CustomerIdAttribute,
  LicenseIdAttribute,
  licenseStateQuery,
  licenseWorkflowId,
} from '../../workflows/license-contract';
import { createAgent } from '../support/agent-server-fixtures';
import { quarantineAgentByHand, transitionLicenseByHand } from '../support/activation-fixtures';
import { startLicenseBed, type LicenseBed } from '../support/license-bed';
import { createTestCustomer, eventually, licenseAudit } from '../support/license-helpers';

/**
 * Reconcile against an operator (or a restore from another instant) that put rows and workflows
 * out of step. The rows are the truth; each repair is audited; a dry run changes nothing.
 */
describe('agentina reconcile', () => {
  const admin: Actor = { kind: 'admin', id: 'adm_reconciletester00001' };
  let bed: LicenseBed;
  let reconcile: ReconcileService;

  beforeAll(async () => {
    bed = await startLicenseBed('reconcile');
    reconcile = createReconcileService({
      pool: bed.db.pool,
      temporal: { client: bed.t.client, taskQueue: bed.t.taskQueue },
      clock: systemClock,
      ensureLifecycle: bed.licenses.ensureLifecycle,
      settleMs: 200,
    });
  });

  afterAll(() => bed?.close());

  it('finds a lifecycle in another state, one with the wrong deadline, an ended one and an orphan; repairs each from the row', async () => {
    const { db, t, licenses } = bed;
    const customerId = await createTestCustomer(db.pool);
    const make = async () =>
      (
        await licenses.createLicense(admin, {
          customerId,
          plan: 'pro',
          features: {},
          maxAgents: 2,
          graceDays: 3,
          trialEndState: 'expired',
          term: { days: 30 },
        })
      ).license.id;
    const [healthy, moved, retimed, ended] = [await make(), await make(), await make(), await make()];
    // The row moved without the workflow (a database restored from a later instant than Temporal's).
    await transitionLicenseByHand(db.pool, moved, 'suspended', 'restored from later');
    // The terms changed in the row only: the workflow's timer is for the old expiry.
    const later = new Date(Date.now() + 90 * 86_400_000);
    await db.adminPool.query('UPDATE licenses SET expires_at = $2 WHERE id = $1', [retimed, later]);
    // An operator with Temporal access ended one.
    await t.client.workflow.getHandle(licenseWorkflowId(ended)).terminate('operator');
    // A lifecycle for a license the database does not have (restored from before it was created).
    const ghost = 'lic_ghostghostghostghost01';
    await t.client.workflow.start('licenseLifecycle', {
      taskQueue: t.taskQueue,
      workflowId: licenseWorkflowId(ghost),
      args: [
        {
          licenseId: ghost,
          customerId,
          expiresAt: later.toISOString(),
          trialEndsAt: null,
          graceDays: 0,
          trialEndState: 'expired',
        },
      ],
      typedSearchAttributes: new TypedSearchAttributes([
        { key: LicenseIdAttribute, value: ghost },
        { key: CustomerIdAttribute, value: customerId },
      ]),
    });
    // A quarantine row with no workflow, and a quarantine workflow for an agent the rows released.
    const stray = await createAgent(db.pool, healthy, customerId);
    await quarantineAgentByHand(db.pool, stray.agentId, 'fingerprint_mismatch');
    const released = await createAgent(db.pool, healthy, customerId);
    await t.client.workflow.start('agentQuarantine', {
      taskQueue: t.taskQueue,
      workflowId: agentWorkflowId(released.agentId),
      args: [{ agentId: released.agentId, reason: 'integrity_mismatch', detectedAt: new Date().toISOString() }],
    });
    const releasedHandle = t.client.workflow.getHandle(agentWorkflowId(released.agentId));
    await eventually(
      () => releasedHandle.query(quarantinePhaseQuery),
      (p) => p === 'quarantined',
    );
    await db.adminPool.query(
      "UPDATE agents SET status = 'active', status_reason = NULL, status_version = status_version + 1 WHERE id = $1",
      [released.agentId],
    );

    const expected = [
      { id: moved, problem: 'wrong_state' },
      { id: retimed, problem: 'wrong_timer' },
      { id: ended, problem: 'closed' },
      { id: ghost, problem: 'orphan' },
      { id: stray.agentId, problem: 'missing' },
      { id: released.agentId, problem: 'orphan' },
    ].sort((a, b) => a.id.localeCompare(b.id));
    const pick = (fs: Array<{ id: string; problem: string }>) =>
      fs.map(({ id, problem }) => ({ id, problem })).sort((a, b) => a.id.localeCompare(b.id));

    const dry = await reconcile.run({ dryRun: true });
    expect(pick(dry.findings)).toEqual(expected);
    expect(dry.repaired).toBe(0);
    expect((await t.client.workflow.getHandle(licenseWorkflowId(moved)).query(licenseStateQuery)).state).toBe('active');

    const wet = await reconcile.run({ dryRun: false });
    expect(pick(wet.findings)).toEqual(expected);
    expect(wet).toMatchObject({ repaired: expected.length, failed: 0 });

    const snap = (id: string) => t.client.workflow.getHandle(licenseWorkflowId(id)).query(licenseStateQuery);
    expect(await snap(moved)).toMatchObject({ state: 'suspended', version: 2, reason: 'restored from later' });
    expect(await snap(retimed)).toMatchObject({
      state: 'active',
      version: 1,
      nextTransitionAt: later.toISOString(),
    });
    expect(await snap(ended)).toMatchObject({ state: 'active', version: 1 });
    expect((await t.client.workflow.getHandle(licenseWorkflowId(ghost)).describe()).status.name).toBe('TERMINATED');
    expect((await releasedHandle.describe()).status.name).toBe('TERMINATED');
    expect(
      await eventually(
        () => t.client.workflow.getHandle(agentWorkflowId(stray.agentId)).query(quarantinePhaseQuery),
        (p) => p === 'quarantined',
      ),
    ).toBe('quarantined');

    // Every repair is in the ledger, in the reconciler's name; the healthy lifecycle was left alone.
    const { rows } = await db.pool.query<{ subject_id: string; action: string; actor_id: string; data: object }>(
      "SELECT subject_id, action, actor_id, data FROM audit_events WHERE action IN ('license.lifecycle_repaired', 'agent.quarantine_repaired')",
    );
    expect(rows.map((r) => r.subject_id).sort()).toEqual(expected.map((e) => e.id).sort());
    expect(rows.every((r) => r.actor_id === 'agentina-reconcile')).toBe(true);
    expect((await licenseAudit(db.pool, healthy)).map((a) => a.action)).toEqual(['license.created']);

    // The repaired lifecycle serves the API again, and a second pass finds nothing.
    expect((await licenses.resumeLicense(moved, admin)).license).toMatchObject({ state: 'active', version: 3 });
    const again = await reconcile.run({ dryRun: false });
    expect(again.findings).toEqual([]);
  }, 120_000);
});
