import { createStatusCheck } from '../../agent/checks/status-check';
import type { App } from '../../api/app';
import {
  loadPurposeSigner,
  statusResponseSchema,
  verifyBatchableSignature,
  verifySignature,
  type KeySet,
} from '../../protocol';
import { buildTestApp, readMetrics, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import {
  createTestKeys,
  insertAgents,
  insertCustomer,
  insertLicense,
  transitionLicenseByHand,
} from '../support/activation-fixtures';
import { pythonVerifiesStatuses } from '../support/python-batch';

type TestApp = Awaited<ReturnType<typeof buildTestApp>>;

/**
 * Batch-signed status answers (protocol/batch-signature.ts) on the real long-poll: agents of this
 * release ask with `signatures=batch`, and one signature covers every answer a change wakes.
 */
describe('GET /v1/agent/status with batch signatures', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeys>;
  let keySet: KeySet;
  let a: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase('statusbatch');
    keys = createTestKeys();
    keySet = keys.keySet;
    a = await buildTestApp({ pool: db.pool, config: testConfig({ AGENTINA_KEYS_DIR: keys.dir }) });
  });
  afterAll(async () => {
    await a?.close();
    await db?.drop();
    keys?.remove();
  });

  async function agentsOn(count: number) {
    const cus = await insertCustomer(db.pool);
    const lic = await insertLicense(db.pool, cus, { maxAgents: 100 });
    return { cus, lic, agents: await insertAgents(db.pool, lic, cus, count) };
  }
  const getStatus = (app: App, credential: string, query = '') =>
    app.inject({ method: 'GET', url: `/v1/agent/status${query}`, headers: { authorization: `Bearer ${credential}` } });
  const parked = async (app: App) => Number(/agentina_status_parked (\d+)/.exec(await readMetrics(app))![1]);
  async function untilParked(app: App, n: number) {
    for (let i = 0; i < 500 && (await parked(app)) < n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await parked(app)).toBeGreaterThanOrEqual(n);
  }
  const batchStats = async (app: App) => {
    const text = await readMetrics(app);
    const n = (name: string) => Number(new RegExp(`${name} (\\d+)`).exec(text)![1]);
    return { batches: n('agentina_status_batch_signatures'), signed: n('agentina_status_batch_signed_answers') };
  };

  it('one signature covers every agent a change wakes (batch), each answer verifies alone, also in Python, and none passes for another', async () => {
    const { lic, agents } = await agentsOn(24);
    const batched = agents.slice(0, 20);
    const before = await batchStats(a.app);
    // Four agents of an older release, which do not ask for batch signatures.
    const polls = agents.map((ag, i) =>
      getStatus(a.app, ag.credential, `?since=1&wait=30${i < 20 ? '&signatures=batch' : ''}`),
    );
    await untilParked(a.app, 24);
    await transitionLicenseByHand(db.pool, lic, 'revoked', 'contract terminated');
    const answers = (await Promise.all(polls)).map((r) => statusResponseSchema.parse(r.json()).status);
    answers.forEach((s, i) => {
      expect(s.payload).toMatchObject({
        agentId: agents[i]!.agentId,
        licenseState: 'revoked',
        good: false,
        version: 2,
      });
      expect(verifyBatchableSignature(s.payload, s.signature, keySet)).toEqual({ ok: true });
      // An older agent's plain verification: a batch answer never reaches it.
      if (i >= 20) expect(verifySignature(s.payload, s.signature, keySet)).toEqual({ ok: true });
    });
    const signatures = new Set(answers.slice(0, 20).map((s) => s.signature.sig));
    const after = await batchStats(a.app);
    expect(signatures.size).toBeLessThanOrEqual(2);
    expect(after.batches - before.batches).toBe(signatures.size);
    expect(after.signed - before.signed).toBe(20);
    // An agent holding its answer cannot pass it off as a neighbour's, nor make it say good.
    const [mine, theirs] = answers;
    expect(verifyBatchableSignature({ ...theirs!.payload }, mine!.signature, keySet).ok).toBe(false);
    expect(verifyBatchableSignature({ ...mine!.payload, good: true }, mine!.signature, keySet).ok).toBe(false);
    // The agent itself takes them, and tells them apart.
    const check = (i: number) =>
      createStatusCheck({
        keys: keySet,
        agentId: batched[i]!.agentId,
        licenseId: lic,
        maxAgeMs: () => 60_000,
        initial: null,
      });
    expect(check(0).accept(answers[0]!)).toEqual({ accepted: true, changed: true });
    expect(check(1).accept(answers[0]!)).toMatchObject({
      accepted: false,
      reason: 'status answer is about another agent',
    });
    expect(check(1).accept({ payload: answers[1]!.payload, signature: answers[0]!.signature })).toMatchObject({
      accepted: false,
      reason: 'status signature rejected: BAD_SIGNATURE',
    });
    // An implementation of the published format in Python, with no code of ours, agrees.
    const publicKeyPem = loadPurposeSigner(keys.dir, 'license').publicKeyPem;
    const forged = { payload: { ...answers[3]!.payload, good: true }, signature: answers[3]!.signature };
    const swapped = { payload: answers[5]!.payload, signature: answers[6]!.signature };
    expect(pythonVerifiesStatuses(publicKeyPem, [...answers, forged, swapped])).toEqual([
      ...answers.map(() => true),
      false,
      false,
    ]);
  });
});
