import { testServices } from '../support/app';
import { Client } from 'pg';
import { createLicenseActivities, type LicenseTransitionInput } from '../../activities/license-activities';
import { insertLicense } from '../../db/licenses-repo';
import { STATUS_CHANNEL } from '../../db/status-feed-repo';
import { newId, systemClock } from '../../protocol';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestCustomer, licenseAudit, licenseFeed } from '../support/license-helpers';

/** The transition activity on its own, against real PostgreSQL: one transaction, idempotent, NOTIFY at commit. */
describe('applyLicenseTransition', () => {
  let db: TestDatabase;
  let customerId: string;
  const applyLicenseTransition = (i: LicenseTransitionInput) =>
    createLicenseActivities(testServices({ pool: db.pool, clock: systemClock })).applyLicenseTransition(i);

  beforeAll(async () => {
    db = await createTestDatabase('licact');
    customerId = await createTestCustomer(db.pool);
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function newLicense(): Promise<string> {
    const id = newId('lic');
    const now = new Date();
    await insertLicense(db.pool, {
      id,
      customerId,
      plan: 'p',
      features: {},
      maxAgents: 1,
      state: 'active',
      notBefore: now,
      expiresAt: new Date(now.getTime() + 86400000),
      trialEndsAt: null,
      trialEndState: 'expired',
      graceDays: 7,
      seatReclaimDays: 14,
      now,
    });
    return id;
  }
  const input = (licenseId: string, over: Partial<LicenseTransitionInput> = {}): LicenseTransitionInput => ({
    workflowId: `license/${licenseId}`,
    licenseId,
    customerId,
    transition: 1,
    action: 'license.revoked',
    from: 'active',
    to: 'revoked',
    expiresAt: new Date(Date.now() + 86400000).toISOString(),
    trialEndsAt: null,
    reason: 'test',
    actor: { kind: 'admin', id: 'adm_activitytest000000001' },
    effectiveAt: new Date().toISOString(),
    ...over,
  });

  it('a retried transition writes nothing twice', async () => {
    const id = await newLicense();
    expect(await applyLicenseTransition(input(id))).toEqual({ version: 2, applied: true });
    expect(await applyLicenseTransition(input(id))).toEqual({ version: 2, applied: false });
    expect(await Promise.all([applyLicenseTransition(input(id)), applyLicenseTransition(input(id))])).toEqual([
      { version: 2, applied: false },
      { version: 2, applied: false },
    ]);
    expect(await licenseAudit(db.pool, id)).toHaveLength(1);
    expect(await licenseFeed(db.pool, id)).toEqual([{ state: 'revoked', version: 2 }]);
    const row = await db.pool.query('SELECT state, version, state_reason FROM licenses WHERE id = $1', [id]);
    expect(row.rows[0]).toEqual({ state: 'revoked', version: '2', state_reason: 'test' });
  });

  it('two different transitions racing for the same version: one lands, the other is refused', async () => {
    const id = await newLicense();
    const results = await Promise.allSettled([
      applyLicenseTransition(input(id, { workflowId: `license/${id}`, action: 'license.suspended', to: 'suspended' })),
      applyLicenseTransition(input(id, { workflowId: `other/${id}`, action: 'license.revoked', to: 'revoked' })),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    expect(await licenseFeed(db.pool, id)).toHaveLength(1);
    expect(await licenseAudit(db.pool, id)).toHaveLength(1);
  });

  it('refuses a transition the row is not ready for, and one for a missing license', async () => {
    const id = await newLicense();
    await expect(applyLicenseTransition(input(id, { transition: 5 }))).rejects.toThrow(/version 1, expected 5/);
    await expect(applyLicenseTransition(input(newId('lic')))).rejects.toMatchObject({
      type: 'LICENSE_NOT_FOUND',
      nonRetryable: true,
    });
    expect(await licenseAudit(db.pool, id)).toHaveLength(0);
  });

  it('NOTIFYs agentina_status with the feed row, delivered at commit', async () => {
    const id = await newLicense();
    const listener = new Client({ connectionString: db.appUrl, options: '-c search_path=agentina' });
    await listener.connect();
    try {
      const received = new Promise<string>((resolve) =>
        listener.on('notification', (n) => n.channel === STATUS_CHANNEL && resolve(n.payload ?? '')),
      );
      await listener.query(`LISTEN ${STATUS_CHANNEL}`);
      await applyLicenseTransition(input(id, { action: 'license.suspended', to: 'suspended' }));
      const notice = JSON.parse(await received) as { licenseId: string; agentId: null; feedId: number };
      const { rows } = await db.pool.query<{ id: string }>('SELECT id FROM status_feed WHERE license_id = $1', [id]);
      expect(notice).toEqual({ licenseId: id, agentId: null, feedId: Number(rows[0]!.id) });
    } finally {
      await listener.end();
    }
  });

  it('the row version can only rise, even for the superuser', async () => {
    const id = await newLicense();
    await applyLicenseTransition(input(id));
    await expect(db.adminPool.query('UPDATE agentina.licenses SET version = 1 WHERE id = $1', [id])).rejects.toThrow(
      /may only rise/,
    );
    await expect(
      db.pool.query('UPDATE licenses SET customer_id = $2 WHERE id = $1', [id, await createTestCustomer(db.pool)]),
    ).rejects.toThrow(/keeps its id and customer/);
  });
});
