import { WorkflowNotFoundError } from '@temporalio/client';
import { createFixedClock, type Actor } from '../../protocol';
import { licenseWorkflowId } from '../../workflows/license-contract';
import { DAY_MS, DEFAULT_EXPIRY_NOTICE_DAYS } from '../../workflows/license-rules';
import { agentWorkflowId } from '../../workflows/agent-quarantine';
import { seatReclaimWorkflowId } from '../../workflows/agent-seat-reclaim';
import { buildTestApp, testConfig } from '../support/app';
import { createAgent, heartbeatRequest } from '../support/agent-server-fixtures';
import { createTestDatabase } from '../support/db';
import {
  createTestCustomer,
  createTestKeysDir,
  startTimeSkippingServer,
  testLicenseService,
} from '../support/license-helpers';
import { runSkippedTimeWorker } from '../support/skipped-time-worker';
import { testTemporalDeps } from '../support/temporal';
import { billableActions, eventTimeMs, historyOfAllRuns } from '../support/temporal-actions';

/**
 * What one active license costs Temporal in a year, measured by living through two years on the
 * time-skipping server: a 365-day license with the production expiry notices (30, 7, 1 days) and
 * 7 grace days, renewed for another year 14 days before each expiry, with `AGENTS` agents
 * heartbeating through the real API (app.inject) every simulated week. Year 1 includes the
 * workflow's start; year 2 is the steady state of a license renewed yearly. The actions are
 * counted from the license's histories (every run, continue-as-new included) by
 * test/support/temporal-actions.ts; heartbeats are shown to cost none by counting the histories
 * just before and just after each round of them, and by no per-agent workflow existing.
 */
const AGENTS = 3;
const WEEKS_PER_YEAR = 52;
const RENEW_DAYS_BEFORE_EXPIRY = 14;

export async function measureLicenseYear(log: (line: string) => void) {
  const env = await startTimeSkippingServer();
  const db = await createTestDatabase('benchyear');
  const keys = createTestKeysDir();
  const taskQueue = 'bench-license-year';
  let stopWorker: (() => Promise<void>) | undefined;
  let built: Awaited<ReturnType<typeof buildTestApp>> | undefined;
  try {
    stopWorker = await runSkippedTimeWorker({ server: env, pool: db.pool, keysDir: keys.dir, taskQueue });
    built = await buildTestApp({
      pool: db.pool,
      temporal: testTemporalDeps(env.client, taskQueue),
      config: testConfig({ AGENTINA_KEYS_DIR: keys.dir, LOG_LEVEL: 'warn' }),
    });
    const app = built.app;
    // The service reads the skipped clock, so terms are relative to workflow time.
    const service = async () =>
      testLicenseService({
        pool: db.pool,
        temporal: { client: env.client, taskQueue },
        clock: createFixedClock(new Date(await env.currentTimeMs())),
        keysDir: keys.dir,
        expiryNoticeDays: [...DEFAULT_EXPIRY_NOTICE_DAYS],
      });
    const admin: Actor = { kind: 'admin', id: 'adm_benchlicenseyear001' };
    const customerId = await createTestCustomer(db.pool, 'Bench license-year customer');
    const t0 = await env.currentTimeMs();
    const { license } = await (
      await service()
    ).createLicense(admin, {
      customerId,
      plan: 'bench',
      features: {},
      maxAgents: AGENTS,
      graceDays: 7,
      trialEndState: 'expired',
      term: { days: 365 },
    });
    const workflowId = licenseWorkflowId(license.id);
    const firstRunId = (await env.client.workflow.getHandle(workflowId).describe()).runId;
    const agents = [];
    for (let i = 0; i < AGENTS; i++) agents.push(await createAgent(db.pool, license.id, customerId));
    const actionsSoFar = async () =>
      (await historyOfAllRuns(env.client, workflowId, firstRunId)).reduce((n, e) => n + billableActions(e), 0);

    let heartbeats = 0;
    let heartbeatActions = 0;
    let expiresAt = Date.parse(license.expiresAt);
    for (let week = 1; week <= 2 * WEEKS_PER_YEAR; week++) {
      await env.sleep(7 * DAY_MS);
      const now = await env.currentTimeMs();
      if (expiresAt - now <= RENEW_DAYS_BEFORE_EXPIRY * DAY_MS) {
        expiresAt += 365 * DAY_MS;
        await (await service()).renewLicense(license.id, admin, new Date(expiresAt).toISOString());
        log(`week ${week}: renewed until ${new Date(expiresAt).toISOString().slice(0, 10)}`);
      }
      const before = await actionsSoFar();
      for (const a of agents) {
        const r = await app.inject(heartbeatRequest(a, 'c'.repeat(64)));
        if (r.statusCode !== 200) throw new Error(`heartbeat answered ${r.statusCode}: ${r.body}`);
        heartbeats++;
      }
      heartbeatActions += (await actionsSoFar()) - before;
    }
    // A heartbeat starts no workflow of its own either (no quarantine, no seat reclaim).
    const exists = async (id: string) => {
      try {
        await env.client.workflow.getHandle(id).describe();
        return true;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      }
    };
    for (const a of agents)
      for (const id of [agentWorkflowId(a.agentId), seatReclaimWorkflowId(a.agentId)])
        if (await exists(id)) heartbeatActions++;

    const events = await historyOfAllRuns(env.client, workflowId, firstRunId);
    const inYear = (y: number) =>
      events.filter((e) => eventTimeMs(e) >= t0 + y * 365 * DAY_MS && eventTimeMs(e) < t0 + (y + 1) * 365 * DAY_MS);
    const count = (es: typeof events) => ({
      actions: es.reduce((n, e) => n + billableActions(e), 0),
      events: es.length,
    });
    const [first, second] = [count(inYear(0)), count(inYear(1))];
    const runs = 1 + events.filter((e) => e.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW').length;
    const kinds = new Map<string, number>();
    for (const e of inYear(1))
      if (billableActions(e)) kinds.set(e.eventType, (kinds.get(e.eventType) ?? 0) + billableActions(e));
    log(
      `license-year: year 2's actions: ${[...kinds].map(([k, n]) => `${k.replace('EVENT_TYPE_', '')} ${n}`).join(', ')}`,
    );
    log(
      `license-year: year 1 ${first.actions} actions / ${first.events} events; year 2 ${second.actions} / ${second.events}; ${heartbeats} heartbeats cost ${heartbeatActions} actions; ${runs} runs`,
    );
    return {
      temporal_actions_per_license_year: second.actions,
      history_events_per_license_year: second.events,
      temporal_actions_first_license_year: first.actions,
      history_events_first_license_year: first.events,
      license_year_heartbeats: heartbeats,
      license_year_heartbeat_actions: heartbeatActions,
      license_year_runs: runs,
    };
  } finally {
    await built?.close();
    await stopWorker?.();
    await env.teardown();
    await db.drop();
    keys.remove();
  }
}
