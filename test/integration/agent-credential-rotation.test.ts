import { createHash, randomBytes } from 'node:crypto';
import { formatAgentCredential, PROOF_HEADER, systemClock, type HeartbeatResponse } from '../../protocol';
import { PREVIOUS_CREDENTIAL_GRACE_MS } from '../../services/agents/credential-rotation';
import { createOffsetClock } from '../support/agent-harness';
import { rememberAgentCredential } from '../support/agent-keys';
import { createAgentWithLicense, eventually, type AgentFixture } from '../support/agent-server-fixtures';
import { buildTestApp, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestKeysDir } from '../support/license-helpers';
import { connectTestTemporal, runTestWorker, testTemporalDeps, type TestTemporal } from '../support/temporal';

/**
 * Credential rotation and clone detection against the real control plane (PostgreSQL, Temporal,
 * the quarantine workflow, the webhook fan-out), played as the agent, as a lost answer, and as
 * whoever holds a copy of the agent's state (its key and an older credential) and replays it
 * with hand-made requests.
 */
jest.setTimeout(90_000);

let db: TestDatabase;
let t: TestTemporal;
let keys: ReturnType<typeof createTestKeysDir>;
let stopWorker: () => Promise<void>;
let built: Awaited<ReturnType<typeof buildTestApp>>;
const clock = createOffsetClock();
const ORIGINAL_IP = '198.51.100.7';
const CLONE_IP = '203.0.113.9';

beforeAll(async () => {
  db = await createTestDatabase('credrotation');
  keys = createTestKeysDir();
  t = await connectTestTemporal('credrotation');
  stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
  built = await buildTestApp({
    pool: db.pool,
    clock,
    temporal: testTemporalDeps(t.client, t.taskQueue),
    config: testConfig({ AGENTINA_KEYS_DIR: keys.dir }),
  });
});
afterAll(async () => {
  await built?.close();
  await stopWorker?.();
  await t?.close();
  await db?.drop();
  keys?.remove();
});
afterEach(() => {
  clock.offsetMs = 0;
});

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** An agent whose generation-0 credential names it, as activation now issues them. */
async function newAgent(): Promise<AgentFixture> {
  const a = await createAgentWithLicense(db.pool);
  const credential = formatAgentCredential(a.agentId, 0, randomBytes(24));
  const { rows } = await db.pool.query<{ public_key: string }>(
    'UPDATE agents SET credential_hash = $2 WHERE id = $1 RETURNING public_key',
    [a.agentId, sha(credential)],
  );
  rememberAgentCredential(credential, rows[0]!.public_key);
  return { ...a, credential };
}

function heartbeat(a: AgentFixture, credential: string, opts: { ip?: string; generation?: number | null } = {}) {
  return built.app.inject({
    method: 'POST',
    url: '/v1/agent/heartbeat',
    remoteAddress: opts.ip ?? ORIGINAL_IP,
    headers: { authorization: `Bearer ${credential}` },
    payload: {
      agentVersion: '1.0.0',
      runtimeHash: 'c'.repeat(64),
      fingerprint: a.fingerprint,
      score: 100,
      changedComponents: [],
      inFlightTasks: 0,
      ...(opts.generation === null ? {} : { credentialGeneration: opts.generation ?? 0 }),
    },
  });
}
async function rotate(a: AgentFixture, credential: string, ip = ORIGINAL_IP) {
  const res = await heartbeat(a, credential, { ip });
  expect(res.statusCode).toBe(200);
  return res.json<HeartbeatResponse>().nextCredential!;
}
const status = (credential: string, opts: { ip?: string; query?: string; proof?: boolean } = {}) =>
  built.app.inject({
    method: 'GET',
    url: `/v1/agent/status${opts.query ?? '?wait=0'}`,
    remoteAddress: opts.ip ?? ORIGINAL_IP,
    headers: { authorization: `Bearer ${credential}`, ...(opts.proof === false ? { [PROOF_HEADER]: undefined } : {}) },
  });
const row = async (id: string) =>
  (
    await db.adminPool.query(
      `SELECT status, status_reason, credential_hash, credential_generation::int AS generation,
              previous_credential_hash, credential_used_ip,
              ARRAY(SELECT credential_hash FROM agentina.agent_pending_credentials p WHERE p.agent_id = a.id
                     ORDER BY issued_at) AS pending
         FROM agentina.agents a WHERE id = $1`,
      [id],
    )
  ).rows[0];
const cloneAudits = async (id: string) =>
  (
    await db.adminPool.query<{ data: Record<string, unknown>; seq: string }>(
      `SELECT data, seq FROM agentina.audit_events WHERE subject_id = $1 AND action = 'agent.clone_detected'`,
      [id],
    )
  ).rows;

describe('rotation at every heartbeat', () => {
  it('issues the next generation; its first use supersedes the one before; only hashes are stored', async () => {
    const a = await newAgent();
    const g1 = await rotate(a, a.credential);
    expect(g1.generation).toBe(1);
    expect(g1.credential).not.toBe(a.credential);
    let r = await row(a.agentId);
    expect(r).toMatchObject({
      generation: 0,
      credential_hash: sha(a.credential),
      pending: [sha(g1.credential)],
    });
    expect(JSON.stringify(r)).not.toContain(g1.credential.slice(4));

    expect((await status(g1.credential)).statusCode).toBe(200);
    r = await row(a.agentId);
    expect(r).toMatchObject({
      generation: 1,
      credential_hash: sha(g1.credential),
      previous_credential_hash: sha(a.credential),
      pending: [],
    });
    const g2 = await rotate(a, g1.credential);
    expect(g2.generation).toBe(2);
    expect((await row(a.agentId)).status).toBe('active');
  });

  it('an agent that does not ask (no credentialGeneration) keeps its credential', async () => {
    const a = await newAgent();
    const res = await heartbeat(a, a.credential, { generation: null });
    expect(res.statusCode).toBe(200);
    expect(res.json<HeartbeatResponse>().nextCredential).toBeUndefined();
    expect((await row(a.agentId)).pending).toEqual([]);
  });
});

describe('a legitimate agent is never taken for a clone', () => {
  it('a lost answer: the heartbeat repeated with the old generation is issued another; the one used wins; no quarantine', async () => {
    const a = await newAgent();
    const lost = await rotate(a, a.credential);
    // The answer never arrived: the agent still uses generation 0 everywhere, and heartbeats again.
    expect((await status(a.credential)).statusCode).toBe(200);
    const again = await rotate(a, a.credential);
    expect(again.generation).toBe(lost.generation);
    expect(again.credential).not.toBe(lost.credential);
    expect((await status(a.credential)).statusCode).toBe(200);
    // Then one arrives and is used.
    expect((await status(again.credential)).statusCode).toBe(200);
    expect(await row(a.agentId)).toMatchObject({ status: 'active', generation: 1, pending: [] });
    expect(await cloneAudits(a.agentId)).toHaveLength(0);
  });

  it('a long-poll parked with the old generation while the heartbeat rotates, and a request already under way, are answered', async () => {
    const a = await newAgent();
    const first = (await status(a.credential)).json<{ status: { payload: { version: number } } }>();
    const parked = status(a.credential, { query: `?since=${first.status.payload.version}&wait=3` });
    const next = await rotate(a, a.credential);
    // The new generation is used at once (the agent re-asks its long-poll with it)…
    expect((await status(next.credential)).statusCode).toBe(200);
    // …while a task poll made with the old one a moment before arrives after the switch.
    const straggler = await built.app.inject({
      method: 'GET',
      url: '/v1/agent/tasks/next?wait=0',
      remoteAddress: ORIGINAL_IP,
      headers: { authorization: `Bearer ${a.credential}` },
    });
    expect(straggler.statusCode).toBe(200);
    expect((await parked).statusCode).toBe(200);
    expect(await row(a.agentId)).toMatchObject({ status: 'active', generation: 1 });
    expect(await cloneAudits(a.agentId)).toHaveLength(0);
  });
});

describe('a copy of the agent state (its key and an older credential), replayed by hand', () => {
  beforeAll(async () => {
    await db.adminPool.query(
      `INSERT INTO agentina.webhook_endpoints (id, url, events, enabled, secret_sealed, created_by_kind, created_by_id, created_at, updated_at)
       VALUES ('whk_clonereceiver0000000', 'https://receiver.example/hooks', '{agent.clone_detected}', true, 'sealed', 'system', 'test', now(), now())`,
    );
  });

  async function expectDetected(a: AgentFixture, presented: number, current: number) {
    const audits = await cloneAudits(a.agentId);
    expect(audits).toHaveLength(1);
    expect(audits[0]!.data).toMatchObject({
      licenseId: a.licenseId,
      presentedGeneration: presented,
      currentGeneration: current,
      presentedIp: CLONE_IP,
      currentIp: ORIGINAL_IP,
    });
    await eventually(async () => (await row(a.agentId)).status === 'quarantined', 'quarantined');
    expect((await row(a.agentId)).status_reason).toBe('clone_detected');
    const { rows } = await db.adminPool.query(
      `SELECT event_type FROM agentina.webhook_deliveries WHERE endpoint_id = 'whk_clonereceiver0000000' AND event_seq = $1`,
      [audits[0]!.seq],
    );
    expect(rows).toEqual([{ event_type: 'agent.clone_detected' }]);
  }

  it('the clone heartbeats with the generation the original has superseded: refused, audited with both addresses, quarantined, announced', async () => {
    const a = await newAgent();
    const g1 = await rotate(a, a.credential);
    expect((await status(g1.credential)).statusCode).toBe(200);
    const res = await heartbeat(a, a.credential, { ip: CLONE_IP });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('CREDENTIAL_SUPERSEDED');
    await expectDetected(a, 0, 1);
    // The original learns it at its next status answer; the clone's next request is refused too, audited once.
    const seen = (await status(g1.credential)).json<{ status: { payload: { agentStatus: string; good: boolean } } }>();
    expect(seen.status.payload).toMatchObject({ agentStatus: 'quarantined', good: false });
    expect((await heartbeat(a, a.credential, { ip: CLONE_IP })).statusCode).toBe(401);
    expect(await cloneAudits(a.agentId)).toHaveLength(1);
  });

  it('two machines in step: each is handed its own next generation; the second to use it is caught at once', async () => {
    const a = await newAgent();
    const mine = await rotate(a, a.credential);
    const theirs = await rotate(a, a.credential, CLONE_IP);
    expect((await status(mine.credential)).statusCode).toBe(200);
    const res = await status(theirs.credential, { ip: CLONE_IP });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('CREDENTIAL_SUPERSEDED');
    await expectDetected(a, 1, 1);
  });

  it('a generation several rotations old (no hash of it is kept) is recognised by what it names', async () => {
    const a = await newAgent();
    let held = a.credential;
    for (let i = 0; i < 3; i++) {
      held = (await rotate(a, held)).credential;
      expect((await status(held)).statusCode).toBe(200);
    }
    const res = await status(a.credential, { ip: CLONE_IP });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('CREDENTIAL_SUPERSEDED');
    await expectDetected(a, 0, 3);
  });

  it('the previous generation past its grace, on any request, is a clone', async () => {
    const a = await newAgent();
    const g1 = await rotate(a, a.credential);
    expect((await status(g1.credential)).statusCode).toBe(200);
    clock.offsetMs = PREVIOUS_CREDENTIAL_GRACE_MS + 5000;
    const res = await status(a.credential, { ip: CLONE_IP });
    expect(res.statusCode).toBe(401);
    await expectDetected(a, 0, 1);
  });

  it('the old credential without the key proves nothing and quarantines nothing', async () => {
    const a = await newAgent();
    const g1 = await rotate(a, a.credential);
    expect((await status(g1.credential)).statusCode).toBe(200);
    for (const r of [
      await status(a.credential, { proof: false, ip: CLONE_IP }),
      await status(g1.credential, { proof: false }),
    ]) {
      expect(r.statusCode).toBe(401);
      expect(r.json().error.code).toBe('PROOF_REJECTED');
    }
    expect((await row(a.agentId)).status).toBe('active');
    expect(await cloneAudits(a.agentId)).toHaveLength(0);
  });
});
