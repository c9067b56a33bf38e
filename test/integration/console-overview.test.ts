import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { createFixedClock, newId, type Actor } from '../../protocol';
import type { AuditAction } from '../../protocol/audit-actions';
import type { OverviewView } from '../../protocol/views';
import { createOverviewService } from '../../services/console/overview-service';
import { createAgent, createStaff } from '../support/agent-server-fixtures';
import { buildTestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { seedAdmin, seedCustomer } from '../support/identity';

/** GET /v1/admin/overview: the console's landing page from a real database, in a fixed number of queries. */
const NOW = new Date('2027-01-10T12:00:00.000Z');
const DAY = 86_400_000;
const at = (days: number) => new Date(NOW.getTime() + days * DAY);

let db: TestDatabase;
let built: Awaited<ReturnType<typeof buildTestApp>>;
const clock = createFixedClock(NOW);

async function insertLicense(
  pool: Pool,
  customerId: string,
  o: { state: string; expiresAt: Date; trialEndsAt?: Date; graceDays?: number },
): Promise<string> {
  const id = newId('lic');
  await pool.query(
    `INSERT INTO licenses (id, customer_id, plan, max_agents, state, not_before, expires_at, trial_ends_at, grace_days)
     VALUES ($1, $2, 'standard', 5, $3, $4, $5, $6, $7)`,
    [id, customerId, o.state, at(-400), o.expiresAt, o.trialEndsAt ?? null, o.graceDays ?? 7],
  );
  return id;
}

async function audit(actor: Actor, action: AuditAction, subject: { kind: string; id: string }) {
  await withTransaction(db.pool, (tx) => appendAudit(tx, { actor, action, subject, data: { reason: 'test' } }, clock));
}

/** A pool that counts the queries sent through it. */
function countingPool(pool: Pool): { pool: Pool; count: () => number } {
  let n = 0;
  const counted = Object.create(pool) as Pool;
  counted.query = ((...args: Parameters<Pool['query']>) => {
    n += 1;
    return (pool.query as (...a: unknown[]) => unknown)(...args);
  }) as Pool['query'];
  return { pool: counted, count: () => n };
}

let acme: string;
let endsIn3: string;
let graceEndsIn5: string;
let trialEndsIn20: string;
let admin: { id: string; email: string };

beforeAll(async () => {
  db = await createTestDatabase('consoleoverview');
  acme = (await seedCustomer(db.pool, 'Acme Robotics')).id;
  endsIn3 = await insertLicense(db.pool, acme, { state: 'active', expiresAt: at(3) });
  graceEndsIn5 = await insertLicense(db.pool, acme, { state: 'grace', expiresAt: at(-2), graceDays: 7 });
  trialEndsIn20 = await insertLicense(db.pool, acme, { state: 'trial', expiresAt: at(200), trialEndsAt: at(20) });
  await insertLicense(db.pool, acme, { state: 'active', expiresAt: at(90) });
  // Ended or stopped licenses never count as ending, whatever their dates say.
  const revoked = await insertLicense(db.pool, acme, { state: 'revoked', expiresAt: at(2) });
  await insertLicense(db.pool, acme, { state: 'suspended', expiresAt: at(4) });
  await insertLicense(db.pool, acme, { state: 'expired', expiresAt: at(-30) });
  const a1 = await createAgent(db.pool, endsIn3, acme);
  const a2 = await createAgent(db.pool, endsIn3, acme);
  await createAgent(db.pool, endsIn3, acme);
  await db.pool.query(
    `UPDATE agents SET status = 'quarantined', status_reason = 'fingerprint_mismatch' WHERE id = $1`,
    [a1.agentId],
  );
  await db.pool.query(`UPDATE agents SET status = 'offline' WHERE id = $1`, [a2.agentId]);

  admin = await seedAdmin(db.pool, { email: 'dana@example.test', cheap: true });
  await db.pool.query(`UPDATE admins SET display_name = 'Dana Operator' WHERE id = $1`, [admin.id]);
  await audit({ kind: 'admin', id: admin.id }, 'license.revoked', { kind: 'license', id: revoked });
  await audit({ kind: 'admin', id: admin.id }, 'license.renewed', { kind: 'license', id: endsIn3 });
  await audit({ kind: 'agent', id: a1.agentId }, 'agent.fingerprint_mismatch', { kind: 'agent', id: a1.agentId });
  await audit({ kind: 'workflow', id: `agent/${a1.agentId}` }, 'agent.quarantined', { kind: 'agent', id: a1.agentId });
  await audit({ kind: 'workflow', id: 'webhook/whe_x/evt_1' }, 'webhook_endpoint.auto_disabled', {
    kind: 'webhook_endpoint',
    id: 'whe_x',
  });
  await audit({ kind: 'workflow', id: 'audit-checkpoint/1' }, 'audit.checkpoint_failed', {
    kind: 'audit_checkpoint',
    id: 'audit-checkpoint/1',
  });
  await audit({ kind: 'admin', id: admin.id }, 'webhook_endpoint.updated', { kind: 'webhook_endpoint', id: 'whe_x' });

  built = await buildTestApp({ pool: db.pool, clock });
});

afterAll(async () => {
  await built?.close();
  await db?.drop();
});

describe('GET /v1/admin/overview', () => {
  it('counts licenses per state and what ends within 7 and 30 days, agents per status, and the notable events', async () => {
    const staff = createStaff(db.pool, clock);
    const res = await built.app.inject({ method: 'GET', url: '/v1/admin/overview', headers: await staff.admin() });
    expect(res.statusCode).toBe(200);
    const o = res.json<OverviewView>();
    expect(o.generatedAt).toBe(NOW.toISOString());
    expect(o.licenses.byState).toEqual({ trial: 1, active: 2, grace: 1, expired: 1, suspended: 1, revoked: 1 });
    // Active ending in 3 days and grace ending in 5; the trial's own end (day 20) counts, not its expiry.
    expect(o.licenses.endingWithin7Days).toBe(2);
    expect(o.licenses.endingWithin30Days).toBe(3);
    expect(o.licenses.endingSoon.map((l) => [l.id, l.state, l.endsAt])).toEqual([
      [endsIn3, 'active', at(3).toISOString()],
      [graceEndsIn5, 'grace', at(5).toISOString()],
      [trialEndsIn20, 'trial', at(20).toISOString()],
    ]);
    expect(o.licenses.endingSoon[0]!.customerName).toBe('Acme Robotics');
    expect(o.agents.byStatus).toEqual({ active: 1, offline: 1, quarantined: 1, deregistered: 0 });
    // Newest first; a renewal and an endpoint's edit are not notable, its switching off after failures is.
    expect(o.recentEvents.map((e) => e.action)).toEqual([
      'audit.checkpoint_failed',
      'webhook_endpoint.auto_disabled',
      'agent.quarantined',
      'agent.fingerprint_mismatch',
      'license.revoked',
    ]);
    expect(o.names[admin.id]).toEqual({ name: 'Dana Operator', email: 'dana@example.test' });
  });

  it('takes the same five queries for a fleet fifty times larger', async () => {
    const measure = async () => {
      const counting = countingPool(db.pool);
      const o = await createOverviewService({ pool: counting.pool, clock }).overview();
      return { queries: counting.count(), o };
    };
    const small = await measure();
    for (let i = 0; i < 50; i++) {
      const lic = await insertLicense(db.pool, acme, { state: 'active', expiresAt: at(1 + (i % 25)) });
      const agent = await createAgent(db.pool, lic, acme);
      await audit({ kind: 'agent', id: agent.agentId }, 'agent.integrity_mismatch', {
        kind: 'agent',
        id: agent.agentId,
      });
    }
    const large = await measure();
    expect(small.queries).toBe(5);
    expect(large.queries).toBe(small.queries);
    expect(large.o.licenses.endingWithin30Days).toBe(53);
    expect(large.o.licenses.endingSoon).toHaveLength(10);
    expect(large.o.recentEvents).toHaveLength(10);
    expect(large.o.agents.byStatus.active).toBe(51);
  });
});
