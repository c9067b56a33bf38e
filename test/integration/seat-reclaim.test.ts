import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { countSeatsInUse } from '../../db/agent-status-repo';
import { createAgentCredentialLookup } from '../../services/agent-status/agent-credentials';
import type { Clock } from '../../protocol';
import { seatReclaimWorkflowId, type AgentSeatReclaimResult } from '../../workflows/agent-seat-reclaim';
import { DAY_MS } from '../../workflows/license-rules';
import { SKIPPED_TIME_PROOF_AGE_MS, testServices } from '../support/app';
import {
  createAgent,
  createCustomer,
  createLicense,
  subjectAudit,
  type AgentFixture,
} from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import { createTestKeysDir, registerSearchAttributes } from '../support/license-helpers';
import { quietTemporalRuntime, runWorkerInBackground } from '../support/temporal';

/**
 * Seats come back: the offline sweep starts each silent agent's agentSeatReclaim timer, which on
 * the time-skipping server sleeps out the license's reclaim window (14 days by default) and frees
 * the seat, with real PostgreSQL writes. The control plane's clock is the authority: it follows
 * the test server's skipped time (polled every 20 ms) where the story says days passed,
 * and stays on the wall clock where an operator tries to make them pass by Temporal alone.
 */
describe('seat reclaim on the time-skipping server', () => {
  const taskQueue = 'seat-reclaim';
  let env: TestWorkflowEnvironment;
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let stopWorker: () => Promise<void>;
  /** The control plane's clock: real time plus what the story says has passed. */
  let offsetMs = 0;
  let followServer = true;
  let syncer: NodeJS.Timeout | undefined;
  const clock: Clock = { now: () => new Date(Date.now() + offsetMs) };
  const syncClock = async () => {
    if (followServer) offsetMs = (await env.currentTimeMs()) - Date.now();
  };

  beforeAll(async () => {
    quietTemporalRuntime();
    db = await createTestDatabase('seatreclaim');
    keys = createTestKeysDir();
  });

  afterAll(async () => {
    await db?.drop();
    keys?.remove();
  });

  // A server of its own for each story: its skipped time, and its locks on skipping, start fresh.
  beforeEach(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: testEnv('AGENTINA_TEST_TIME_SKIPPING_SERVER') } },
    });
    await registerSearchAttributes(env.connection);
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: { codePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') },
      activities: createActivities(
        testServices({ pool: db.pool, clock, keysDir: keys.dir, updateOriginMaxAgeMs: SKIPPED_TIME_PROOF_AGE_MS }),
      ),
    });
    stopWorker = runWorkerInBackground(worker);
    followServer = true;
    await syncClock();
    syncer = setInterval(() => void syncClock().catch(() => undefined), 20);
  });

  afterEach(async () => {
    clearInterval(syncer);
    await stopWorker?.();
    await env?.teardown();
  });

  async function silentAgent(opts: { seatReclaimDays?: number } = {}): Promise<AgentFixture> {
    const customerId = await createCustomer(db.pool);
    const licenseId = await createLicense(db.pool, customerId, { maxAgents: 1 });
    if (opts.seatReclaimDays !== undefined)
      await db.adminPool.query('UPDATE agentina.licenses SET seat_reclaim_days = $2 WHERE id = $1', [
        licenseId,
        opts.seatReclaimDays,
      ]);
    // Last heard of an hour ago (its activation), never since.
    return createAgent(db.pool, licenseId, customerId, new Date(clock.now().getTime() - 3600_000));
  }
  const sweep = () =>
    env.client.workflow.execute('agentOfflineSweep', {
      taskQueue,
      workflowId: `sweep-${Math.random().toString(36).slice(2)}`,
      args: [{ staleAfterS: 180 }],
    });
  const agentRow = async (id: string) =>
    (await db.adminPool.query('SELECT status, status_reason FROM agentina.agents WHERE id = $1', [id])).rows[0];
  const audits = (id: string) => subjectAudit(db.adminPool, id);
  const timer = (agentId: string) => env.client.workflow.getHandle(seatReclaimWorkflowId(agentId));
  /** The timer's result; awaiting it lets the server skip time. */
  const timerOutcome = async (agentId: string) => (await timer(agentId).result()) as AgentSeatReclaimResult;

  it('an operator with Temporal access who starts the timer by hand (and lets Temporal skip time) reclaims nothing the control plane does not see as due', async () => {
    followServer = false;
    offsetMs = 0;
    const a = await silentAgent();
    // Offline (as the sweep marks it), with no timer yet: the operator starts one.
    await db.adminPool.query("UPDATE agentina.agents SET status = 'offline' WHERE id = $1", [a.agentId]);
    const silentSince = (
      await db.adminPool.query('SELECT created_at FROM agentina.agents WHERE id = $1', [a.agentId])
    ).rows[0].created_at.toISOString();
    await env.client.workflow.start('agentSeatReclaim', {
      taskQueue,
      workflowId: seatReclaimWorkflowId(a.agentId),
      args: [{ agentId: a.agentId, silentSince }],
    });
    // Fifteen days of Temporal time; none for the control plane.
    await env.sleep(15 * DAY_MS);
    expect((await agentRow(a.agentId)).status).toBe('offline');
    expect((await audits(a.agentId)).map((e: { action: string }) => e.action)).not.toContain('agent.reclaimed');
    await timer(a.agentId).terminate('test over');
  });

  it('an agent that comes back before the window keeps its seat; its timer watches on from its new heartbeat', async () => {
    const a = await silentAgent();
    await sweep();
    await env.sleep(3 * DAY_MS);
    // It heartbeats on day 3, and is marked offline again.
    await syncClock();
    await db.adminPool.query("UPDATE agentina.agents SET status = 'offline', last_heartbeat_at = $2 WHERE id = $1", [
      a.agentId,
      clock.now(),
    ]);
    await env.sleep(12 * DAY_MS);
    expect((await agentRow(a.agentId)).status).toBe('offline');
    expect(await countSeatsInUse(db.pool, a.licenseId)).toBe(1);
    expect((await timer(a.agentId).describe()).status.name).toBe('RUNNING');
    // Fourteen days after that heartbeat the seat goes.
    expect((await timerOutcome(a.agentId)).outcome).toBe('reclaimed');
    expect((await audits(a.agentId)).at(-1)).toMatchObject({ action: 'agent.reclaimed' });
  });

  it('an agent offline past the 14-day window is deregistered by its timer: seat freed, credential dead, audited agent.reclaimed', async () => {
    const a = await silentAgent();
    expect(await countSeatsInUse(db.pool, a.licenseId)).toBe(1);
    const before = await env.currentTimeMs();
    expect((await sweep()).marked).toBeGreaterThanOrEqual(1);
    expect((await agentRow(a.agentId)).status).toBe('offline');

    const result = await timerOutcome(a.agentId);
    expect(result).toEqual({ agentId: a.agentId, outcome: 'reclaimed' });
    expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(13 * DAY_MS);
    expect(await agentRow(a.agentId)).toMatchObject({ status: 'deregistered' });
    expect((await agentRow(a.agentId)).status_reason).toMatch(/14-day seat-reclaim window/);
    expect(await countSeatsInUse(db.pool, a.licenseId)).toBe(0);
    expect(await createAgentCredentialLookup({ pool: db.pool })(a.credential)).toBeUndefined();
    const last = (await audits(a.agentId)).at(-1);
    expect(last).toMatchObject({
      action: 'agent.reclaimed',
      actor_kind: 'workflow',
      actor_id: `agent/${a.agentId}/seat-reclaim`,
      data: { from: 'offline', to: 'deregistered', licenseId: a.licenseId, seatReclaimDays: 14 },
    });
    // Operators find the timer next to its license in Temporal Web.
    const described = await timer(a.agentId).describe();
    expect(described.searchAttributes.LicenseId).toEqual([a.licenseId]);
    // The agent's status feed says deregistered: a parked agent learns it at once.
    const feed = await db.adminPool.query(
      'SELECT state FROM agentina.status_feed WHERE agent_id = $1 ORDER BY id DESC LIMIT 1',
      [a.agentId],
    );
    expect(feed.rows[0].state).toBe('deregistered');
  });

  it('a license with a window of 0 reclaims no seats: the timer ends at once', async () => {
    const a = await silentAgent({ seatReclaimDays: 0 });
    await sweep();
    expect(await timerOutcome(a.agentId)).toEqual({ agentId: a.agentId, outcome: 'off' });
    expect((await agentRow(a.agentId)).status).toBe('offline');
  });

  it('a quarantined agent is never reclaimed by the timer (releasing or deregistering it is an admin decision)', async () => {
    const a = await silentAgent();
    await sweep();
    await db.adminPool.query("UPDATE agentina.agents SET status = 'quarantined' WHERE id = $1", [a.agentId]);
    expect(await timerOutcome(a.agentId)).toEqual({ agentId: a.agentId, outcome: 'quarantined' });
    expect((await agentRow(a.agentId)).status).toBe('quarantined');
  });
});
