import { randomBytes } from 'node:crypto';
import { createAuditService } from '../../services/audit/audit-service';
import { createKeyStore } from '../../services/keys';
import { createMetrics } from '../../services/metrics';
import { registerFleetGauges } from '../../services/metrics-fleet';
import { startAuditVerifyWatch } from '../../worker/audit-watch';
import { registerScheduleGauges } from '../../worker/metrics';
import { createAgentWithLicense } from '../support/agent-server-fixtures';
import { useLedgerFixture } from '../support/audit-ledger';
import { eventually } from '../support/license-helpers';
import { connectTestTemporal, type TestTemporal } from '../support/temporal';

/**
 * The worker's gauges say what the alerts in docs/operations.md need: a broken audit chain turns
 * `agentina_audit_verify_ok` to 0, webhook endpoints failing or disabled by their failures and
 * quarantined agents are counted from the rows, and a paused Schedule says so with its age.
 */
const ledger = useLedgerFixture('workermetrics');
const quiet = { error: () => undefined, warn: () => undefined };
const value = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe("the worker's metrics", () => {
  it('agentina_audit_verify_ok is 1 on an intact chain and 0 once a row was changed behind its back', async () => {
    const { db, keysDir } = ledger.current();
    for (let i = 0; i < 3; i++) await ledger.appendOne(i);
    const metrics = createMetrics();
    const stop = startAuditVerifyWatch({
      audit: createAuditService({ pool: db.pool, keys: createKeyStore(keysDir) }),
      metrics,
      intervalMs: 200,
      logger: quiet,
    });
    try {
      // Not listed until the first verification has ended: no alert on a verdict not yet reached.
      expect(value(await metrics.render(), 'agentina_audit_verify_ok')).toBeUndefined();
      await eventually(
        () => metrics.render(),
        (t) => value(t, 'agentina_audit_verify_ok') === 1,
        20_000,
        'verified',
      );
      expect(value(await metrics.render(), 'agentina_audit_verify_failures_total')).toBe(0);
      await ledger.asSuperuserWithoutTriggers('audit_events', (c) =>
        c.query(`UPDATE agentina.audit_events SET data = '{"i": 99}' WHERE seq = 2`),
      );
      const text = await eventually(
        () => metrics.render(),
        (t) => value(t, 'agentina_audit_verify_ok') === 0,
        20_000,
        'the break seen',
      );
      expect(value(text, 'agentina_audit_verify_failures_total')).toBeGreaterThan(0);
      expect(value(text, 'agentina_audit_verify_last_run_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
    } finally {
      stop();
    }
  });

  it('counts webhook endpoints failing, disabled by their failures or by an admin, and agents by status', async () => {
    const { db } = ledger.current();
    const metrics = createMetrics();
    registerFleetGauges(metrics, { pool: db.pool });
    const endpoint = (enabled: boolean, failures: number, reason: string | null) =>
      db.adminPool.query(
        `INSERT INTO agentina.webhook_endpoints (id, url, events, enabled, disabled_reason, secret_sealed, consecutive_failures,
                created_by_kind, created_by_id, created_at, updated_at)
         VALUES ($1, 'https://example.test/hook', '{license.revoked}', $2, $3, 'sealed', $4, 'admin', 'adm_x', now(), now())`,
        [`whk_${randomBytes(12).toString('base64url')}`, enabled, reason, failures],
      );
    await endpoint(true, 0, null);
    await endpoint(true, 7, null);
    await endpoint(false, 0, 'disabled by an admin');
    await endpoint(false, 12, 'persistent delivery failure');
    const a = await createAgentWithLicense(db.pool);
    await createAgentWithLicense(db.pool);
    await db.adminPool.query("UPDATE agentina.agents SET status = 'quarantined' WHERE id = $1", [a.agentId]);

    const text = await metrics.render();
    expect(value(text, 'agentina_webhook_endpoints{state="enabled"}')).toBe(2);
    expect(value(text, 'agentina_webhook_endpoints{state="failing"}')).toBe(1);
    expect(value(text, 'agentina_webhook_endpoints{state="disabled"}')).toBe(2);
    expect(value(text, 'agentina_webhook_endpoints{state="auto_disabled"}')).toBe(1);
    expect(value(text, 'agentina_webhook_endpoint_consecutive_failures_max')).toBe(7);
    expect(value(text, 'agentina_agents{status="quarantined"}')).toBe(1);
    expect(value(text, 'agentina_agents{status="active"}')).toBe(1);
    expect(value(text, 'agentina_agents{status="deregistered"}')).toBe(0);
  });

  describe('Schedules', () => {
    let t: TestTemporal;
    const id = `metrics-probe-${randomBytes(6).toString('hex')}`;
    beforeAll(async () => {
      t = await connectTestTemporal('workermetrics');
    });
    afterAll(async () => {
      await t?.client.schedule
        .getHandle(id)
        .delete()
        .catch(() => undefined);
      await t?.close();
    });

    it('a paused Schedule reports itself paused, its interval, and an age that only grows', async () => {
      await t.client.schedule.create({
        scheduleId: id,
        spec: { intervals: [{ every: 3_600_000 }] },
        action: { type: 'startWorkflow', workflowType: 'neverRuns', workflowId: id, taskQueue: t.taskQueue, args: [] },
        state: { paused: true, note: 'metrics test' },
      });
      const metrics = createMetrics();
      const entry = { id, workflowType: 'neverRuns', everyMs: 3_600_000, note: '' };
      registerScheduleGauges(metrics, t.client, [entry]);
      const series = (name: string) => `${name}{schedule="${id}"}`;
      const first = await metrics.render();
      expect(value(first, series('agentina_schedule_paused'))).toBe(1);
      expect(value(first, series('agentina_schedule_interval_seconds'))).toBe(3600);
      const age = value(first, series('agentina_schedule_last_action_age_seconds'))!;
      expect(age).toBeGreaterThanOrEqual(0);
      const later = await eventually(
        async () => {
          await new Promise((r) => setTimeout(r, 2100));
          return value(await metrics.render(), series('agentina_schedule_last_action_age_seconds'))!;
        },
        (v) => v > age,
        20_000,
        'the age grew',
      );
      expect(later).toBeGreaterThan(age);
      // A Schedule that cannot be described (deleted by hand) is counted, not a failed scrape.
      await t.client.schedule.getHandle(id).delete();
      await eventually(
        async () => {
          await new Promise((r) => setTimeout(r, 2100));
          return metrics.render();
        },
        (text) => (value(text, 'agentina_metrics_collect_errors_total{metric="agentina_schedule_paused"}') ?? 0) > 0,
        30_000,
        'the failed read counted',
      );
    });
  });
});
