import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../api/auth/access';
import { createFixedClock, systemClock } from '../../protocol';
import { createKeyStore } from '../../services/keys';
import { createUpdateOrigin, ORIGIN_PROOF_MAX_AGE_MS } from '../../services/licenses/update-origin';
import { agentWorkflowId, quarantinePhaseQuery } from '../../workflows/agent-quarantine';
import { licenseStateQuery, licenseWorkflowId } from '../../workflows/license-contract';
import { createAgentWithLicense } from '../support/agent-server-fixtures';
import { buildTestApp, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import { createTestCustomer, createTestKeysDir, eventually, licenseAudit } from '../support/license-helpers';
import { connectTestTemporal, type TestTemporal, runTestWorker } from '../support/temporal';

const run = promisify(execFile);

/** The refusal as the sender sees it: the Update's failure carries the activity's message. */
async function refusalOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    let e: unknown = err;
    const messages: string[] = [];
    while (e instanceof Error) {
      messages.push(e.message);
      e = (e as { cause?: unknown }).cause;
    }
    return messages.join(' / ');
  }
  throw new Error('the Update was applied');
}

/**
 * An operator who can reach Temporal's frontend sends lifecycle Updates by hand, naming an admin
 * as the actor. Only Updates the API signed are applied: the rest are refused, audited as
 * `license.update_refused` (`agent.release_refused` for a quarantine), and leave the license, the
 * agent and their workflows as they were.
 */
describe('lifecycle Updates that did not come from the API', () => {
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let otherKeys: ReturnType<typeof createTestKeysDir>;
  let stopWorker: () => Promise<void>;
  let harness: Awaited<ReturnType<typeof buildTestApp>>;
  let customerId: string;
  const admin: Principal = { kind: 'admin', id: 'adm_originrealadmin000001', sessionId: 's1' };

  beforeAll(async () => {
    db = await createTestDatabase('origin');
    t = await connectTestTemporal('origin');
    keys = createTestKeysDir();
    otherKeys = createTestKeysDir();
    customerId = await createTestCustomer(db.pool);
    stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
    const config = testConfig({
      TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
      TEMPORAL_TASK_QUEUE: t.taskQueue,
      AGENTINA_KEYS_DIR: keys.dir,
    });
    const authenticate = async (req: FastifyRequest): Promise<Principal | null> =>
      req.headers['x-test-as'] === 'admin' ? admin : null;
    harness = await buildTestApp({ pool: db.pool, config, authenticate });
  });

  afterAll(async () => {
    await harness?.close();
    await stopWorker?.();
    await t?.close();
    await db?.drop();
    keys?.remove();
    otherKeys?.remove();
  });

  const api = (method: 'GET' | 'POST', url: string, payload?: object) =>
    harness.app.inject({ method, url, headers: { 'x-test-as': 'admin' }, ...(payload ? { payload } : {}) });
  const future = (days: number) => new Date(Date.now() + days * 86400000).toISOString();
  async function newLicense(): Promise<string> {
    const res = await api('POST', '/v1/admin/licenses', { customerId, plan: 'pro', maxAgents: 1, term: { days: 30 } });
    expect(res.statusCode).toBe(201);
    return res.json().license.id as string;
  }
  const row = async (id: string) =>
    (
      await db.pool.query<{ state: string; version: number; expires_at: Date; state_reason: string | null }>(
        'SELECT state, version::int AS version, expires_at, state_reason FROM licenses WHERE id = $1',
        [id],
      )
    ).rows[0]!;
  const refusals = async (id: string) =>
    (await licenseAudit(db.pool, id)).filter((a) => a.action === 'license.update_refused');
  const handle = (id: string) => t.client.workflow.getHandle(licenseWorkflowId(id));
  /** The arguments of every Update the lifecycle accepted, as its history recorded them. */
  async function acceptedUpdates(id: string): Promise<Array<{ name: string; args: Record<string, unknown> }>> {
    const history = await handle(id).fetchHistory();
    return (history.events ?? [])
      .map((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest)
      .filter((r) => r?.input)
      .map((r) => ({
        name: r!.input!.name!,
        args: JSON.parse(Buffer.from(r!.input!.args!.payloads![0]!.data!).toString('utf8')) as Record<string, unknown>,
      }));
  }

  it('refuses a renewal made with the temporal CLI, audits who it claimed to be, and the lifecycle goes on', async () => {
    const id = await newLicense();
    const before = await row(id);
    const claimed = { kind: 'admin', id: 'adm_x' };
    const cli = await run(testEnv('AGENTINA_TEST_TEMPORAL_CLI'), [
      'workflow',
      'update',
      'execute',
      '--address',
      t.address,
      '--namespace',
      'default',
      '--workflow-id',
      licenseWorkflowId(id),
      '--name',
      'renew',
      '--input',
      JSON.stringify({ expiresAt: '2099-01-01T00:00:00Z', actor: claimed }),
    ]).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    expect(cli.code).not.toBe(0);
    expect(cli.out).toMatch(/not made through the Agentina API/);

    expect(await row(id)).toEqual(before);
    const [refused, ...more] = await refusals(id);
    expect(more).toEqual([]);
    expect(refused).toMatchObject({
      actor_kind: 'workflow',
      actor_id: licenseWorkflowId(id),
      data: {
        update: 'renew',
        origin: 'unauthenticated',
        reason: 'missing_proof',
        claimedActor: claimed,
        requested: { expiresAt: '2099-01-01T00:00:00Z' },
        state: 'active',
      },
    });
    // No renewal audited as adm_x, and the lifecycle still answers and applies the API's changes.
    expect((await licenseAudit(db.pool, id)).map((a) => a.action)).toEqual([
      'license.created',
      'license.update_refused',
    ]);
    expect(await handle(id).query(licenseStateQuery)).toMatchObject({ state: 'active', version: 1 });
    const renewed = await api('POST', `/v1/admin/licenses/${id}/renew`, { expiresAt: future(60) });
    expect(renewed.statusCode).toBe(200);
    expect(renewed.json().license).toMatchObject({ state: 'active', version: 2 });
    expect((await licenseAudit(db.pool, id)).at(-1)).toMatchObject({ action: 'license.renewed', actor_id: admin.id });
  });

  it('refuses a proof copied from the history (replayed), and one whose arguments were changed', async () => {
    const id = await newLicense();
    expect((await api('POST', `/v1/admin/licenses/${id}/suspend`, { reason: 'billing hold' })).statusCode).toBe(200);
    expect((await api('POST', `/v1/admin/licenses/${id}/resume`, {})).statusCode).toBe(200);
    const [suspend] = await acceptedUpdates(id);
    expect(suspend).toMatchObject({ name: 'suspend', args: { origin: { mac: expect.any(String) } } });
    const before = await row(id);

    // The very Update the admin sent, sent again: its nonce is spent.
    expect(await refusalOf(handle(id).executeUpdate('suspend', { args: [suspend!.args] }))).toMatch(/replayed/);
    // The same proof on other arguments: the MAC does not match.
    const forged = { ...suspend!.args, reason: 'forged hold' };
    expect(await refusalOf(handle(id).executeUpdate('suspend', { args: [forged] }))).toMatch(/bad_proof/);
    // The same proof sent to another license's lifecycle.
    const other = await newLicense();
    expect(await refusalOf(handle(other).executeUpdate('suspend', { args: [suspend!.args] }))).toMatch(/bad_proof/);

    expect(await row(id)).toEqual(before);
    expect((await row(other)).state).toBe('active');
    expect((await refusals(id)).map((r) => r.data.reason)).toEqual(['replayed', 'bad_proof']);
    expect((await refusals(other)).map((r) => r.data.reason)).toEqual(['bad_proof']);
  });

  it('refuses a change of terms sent by hand (more seats, a new plan) and an admin’s proof moved onto other terms', async () => {
    const id = await newLicense();
    const before = await row(id);
    const claimed = { kind: 'admin', id: admin.id };
    // Straight to Temporal, naming the real admin: no proof.
    const byHand = { terms: { maxAgents: 500, plan: 'free-upgrade' }, actor: claimed };
    expect(await refusalOf(handle(id).executeUpdate('changeTerms', { args: [byHand] }))).toMatch(
      /not made through the Agentina API .*missing_proof/,
    );
    // A real admin's change, then its proof reused with more seats and sent again.
    const patched = await harness.app.inject({
      method: 'PATCH',
      url: `/v1/admin/licenses/${id}`,
      headers: { 'x-test-as': 'admin' },
      payload: { maxAgents: 2 },
    });
    expect(patched.statusCode).toBe(200);
    // Accepted by the workflow's validator (its shape is fine); the transition then refused it.
    const accepted = (await acceptedUpdates(id)).filter((u) => u.name === 'changeTerms');
    expect(accepted.map((u) => 'origin' in u.args)).toEqual([false, true]);
    const signed = accepted[1]!.args;
    expect(await refusalOf(handle(id).executeUpdate('changeTerms', { args: [signed] }))).toMatch(
      /replayed|unchanged|leaves the terms/,
    );
    const more = { ...signed, terms: { maxAgents: 500 } };
    expect(await refusalOf(handle(id).executeUpdate('changeTerms', { args: [more] }))).toMatch(/bad_proof/);

    expect(await row(id)).toMatchObject({ state: before.state, version: 2 });
    const maxAgents = await db.pool.query('SELECT max_agents, plan FROM licenses WHERE id = $1', [id]);
    expect(maxAgents.rows[0]).toEqual({ max_agents: 2, plan: 'pro' });
    const refused = await refusals(id);
    expect(refused.map((r) => r.data.reason)).toEqual(['missing_proof', 'replayed', 'bad_proof']);
    expect(refused[0]).toMatchObject({
      data: { update: 'changeTerms', claimedActor: claimed, requested: { terms: 'maxAgents,plan' } },
    });
    expect((await licenseAudit(db.pool, id)).filter((a) => a.action === 'license.terms_changed')).toHaveLength(1);
  });

  it('refuses proofs signed with another secret, expired ones and ones from the future', async () => {
    const id = await newLicense();
    const wf = licenseWorkflowId(id);
    const args = { expiresAt: future(90), actor: { kind: 'admin' as const, id: admin.id } };
    const signer = (dir: string, at: Date) =>
      createUpdateOrigin({ secrets: () => createKeyStore(dir).secrets('update-origin'), clock: createFixedClock(at) });
    const foreign = signer(otherKeys.dir, new Date()).sign(wf, 'renew', args);
    const sameKidOtherSecret = {
      ...foreign,
      origin: { ...foreign.origin, kid: createKeyStore(keys.dir).secrets('update-origin')[0]!.kid },
    };
    const old = signer(keys.dir, new Date(Date.now() - ORIGIN_PROOF_MAX_AGE_MS - 60_000)).sign(wf, 'renew', args);
    const ahead = signer(keys.dir, new Date(Date.now() + 10 * 60_000)).sign(wf, 'renew', args);
    const malformed = { ...args, origin: { kid: 'x', issuedAt: 'yesterday', nonce: '!', mac: 5 } };
    for (const a of [foreign, sameKidOtherSecret, old, ahead, malformed])
      expect(await refusalOf(handle(id).executeUpdate('renew', { args: [a] }))).toMatch(
        /not made through the Agentina API/,
      );
    expect((await refusals(id)).map((r) => r.data.reason)).toEqual([
      'unknown_key',
      'bad_proof',
      'expired',
      'issued_in_future',
      'malformed_proof',
    ]);
    expect(await row(id)).toMatchObject({ version: 1, state: 'active' });
    // A proof made now with this server's secret is what the API sends: accepted.
    const good = signer(keys.dir, new Date()).sign(wf, 'renew', args);
    await expect(handle(id).executeUpdate('renew', { args: [good] })).resolves.toMatchObject({ version: 2 });
  });

  it('refuses a quarantine release made by hand; the quarantine waits on, and the API’s release applies once', async () => {
    const agent = await createAgentWithLicense(db.pool);
    const wf = agentWorkflowId(agent.agentId);
    const quarantine = await t.client.workflow.start('agentQuarantine', {
      taskQueue: t.taskQueue,
      workflowId: wf,
      args: [{ agentId: agent.agentId, reason: 'integrity_mismatch', detectedAt: new Date().toISOString() }],
    });
    await eventually(
      () => quarantine.query(quarantinePhaseQuery),
      (p) => p === 'quarantined',
      20000,
      'quarantined',
    );
    const cli = await run(testEnv('AGENTINA_TEST_TEMPORAL_CLI'), [
      'workflow',
      'update',
      'execute',
      '--address',
      t.address,
      '--namespace',
      'default',
      '--workflow-id',
      wf,
      '--name',
      'releaseAgent',
      '--input',
      JSON.stringify({ actor: { kind: 'admin', id: 'adm_x' } }),
    ]).then(
      () => 'applied',
      (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
    );
    expect(cli).toMatch(/not made through the Agentina API/);
    const status = async () =>
      (await db.pool.query<{ status: string }>('SELECT status FROM agents WHERE id = $1', [agent.agentId])).rows[0]!
        .status;
    const audit = async () =>
      (
        await db.pool.query<{ action: string; actor_id: string; data: Record<string, unknown> }>(
          "SELECT action, actor_id, data FROM audit_events WHERE subject_kind = 'agent' AND subject_id = $1 ORDER BY seq",
          [agent.agentId],
        )
      ).rows;
    expect(await status()).toBe('quarantined');
    expect(await quarantine.query(quarantinePhaseQuery)).toBe('quarantined');
    expect((await audit()).map((a) => a.action)).toEqual(['agent.quarantined', 'agent.release_refused']);
    expect((await audit())[1]).toMatchObject({
      actor_id: wf,
      data: { origin: 'unauthenticated', reason: 'missing_proof', claimedActor: { kind: 'admin', id: 'adm_x' } },
    });

    const released = await api('POST', `/v1/admin/agents/${agent.agentId}/release`, {});
    expect(released.statusCode).toBe(200);
    expect(await quarantine.result()).toEqual({ agentId: agent.agentId, outcome: 'released' });
    expect((await audit()).filter((a) => a.action === 'agent.released')).toEqual([
      expect.objectContaining({ actor_id: admin.id }),
    ]);

    // The API's signed release, copied from that history into the next quarantine: spent.
    const history = await quarantine.fetchHistory();
    const sent = (history.events ?? [])
      .map((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input)
      .filter((i) => i?.name === 'releaseAgent')
      .map((i) => JSON.parse(Buffer.from(i!.args!.payloads![0]!.data!).toString('utf8')) as Record<string, unknown>)
      .find((a) => a.origin);
    expect(sent).toBeDefined();
    const again = await t.client.workflow.start('agentQuarantine', {
      taskQueue: t.taskQueue,
      workflowId: wf,
      args: [{ agentId: agent.agentId, reason: 'integrity_mismatch', detectedAt: new Date().toISOString() }],
    });
    await eventually(
      () => again.query(quarantinePhaseQuery),
      (p) => p === 'quarantined',
      20000,
      'quarantined again',
    );
    expect(await refusalOf(again.executeUpdate('releaseAgent', { args: [sent] }))).toMatch(/replayed/);
    expect(await status()).toBe('quarantined');
    expect((await audit()).at(-1)).toMatchObject({ action: 'agent.release_refused', data: { reason: 'replayed' } });
    await again.terminate('test over');
  });

  it('an API whose secret differs from the worker’s gets a clear 503 and changes nothing', async () => {
    const id = await newLicense();
    const config = testConfig({
      TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
      TEMPORAL_TASK_QUEUE: t.taskQueue,
      AGENTINA_KEYS_DIR: otherKeys.dir,
    });
    const stray = await buildTestApp({ pool: db.pool, config, authenticate: async () => admin });
    try {
      const res = await stray.app.inject({
        method: 'POST',
        url: `/v1/admin/licenses/${id}/revoke`,
        payload: { reason: 'x' },
      });
      expect([res.statusCode, res.body]).toEqual([503, expect.any(String)]);
      expect(res.json().error).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/origin proof/) });
    } finally {
      await stray.close();
    }
    expect(await row(id)).toMatchObject({ version: 1, state: 'active' });
    expect((await refusals(id)).map((r) => r.data.reason)).toEqual(['unknown_key']);
  });

  it('a quarantine release from an API with another secret is a 503, not a release behind the quarantine’s back', async () => {
    const agent = await createAgentWithLicense(db.pool);
    const quarantine = await t.client.workflow.start('agentQuarantine', {
      taskQueue: t.taskQueue,
      workflowId: agentWorkflowId(agent.agentId),
      args: [{ agentId: agent.agentId, reason: 'integrity_mismatch', detectedAt: new Date().toISOString() }],
    });
    await eventually(
      () => quarantine.query(quarantinePhaseQuery),
      (p) => p === 'quarantined',
      20000,
      'quarantined',
    );
    const config = testConfig({
      TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
      TEMPORAL_TASK_QUEUE: t.taskQueue,
      AGENTINA_KEYS_DIR: otherKeys.dir,
    });
    const stray = await buildTestApp({ pool: db.pool, config, authenticate: async () => admin });
    try {
      const res = await stray.app.inject({
        method: 'POST',
        url: `/v1/admin/agents/${agent.agentId}/release`,
        payload: {},
      });
      expect([res.statusCode, res.json().error?.message]).toEqual([503, expect.stringMatching(/origin proof/)]);
    } finally {
      await stray.close();
    }
    const status = await db.pool.query<{ status: string }>('SELECT status FROM agents WHERE id = $1', [agent.agentId]);
    expect(status.rows[0]!.status).toBe('quarantined');
    expect(await quarantine.query(quarantinePhaseQuery)).toBe('quarantined');
    // This server's release still goes through the quarantine.
    expect((await api('POST', `/v1/admin/agents/${agent.agentId}/release`, {})).statusCode).toBe(200);
    expect(await quarantine.result()).toEqual({ agentId: agent.agentId, outcome: 'released' });
  });
});
