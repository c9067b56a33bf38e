import { createHash, createHmac, generateKeyPairSync, sign } from 'node:crypto';
import {
  formatEd25519Proof,
  formatHmacProof,
  parseSession,
  proofMessage,
  PROOF_HEADER,
  PROOF_WINDOW_MS,
  SERVER_TIME_HEADER,
  SESSION_HEADER,
} from '../../protocol';
import { createTestKeys } from '../support/activation-fixtures';
import { agentProofFor } from '../support/agent-keys';
import { asAgent, createAgentWithLicense, type AgentFixture } from '../support/agent-server-fixtures';
import { buildTestApp, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';

/**
 * Proof of possession, as the thief who holds an agent's `agc_…` credential (copied from a
 * backup, a log, a support bundle) but not its private key, and as one who records a genuine
 * request and plays it again. Two API processes on one database and keys directory.
 */
type TestApp = Awaited<ReturnType<typeof buildTestApp>>;
let db: TestDatabase;
let keys: ReturnType<typeof createTestKeys>;
let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  db = await createTestDatabase('agentproof');
  keys = createTestKeys();
  const config = testConfig({ AGENTINA_KEYS_DIR: keys.dir });
  a = await buildTestApp({ pool: db.pool, config });
  b = await buildTestApp({ pool: db.pool, config });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
  keys?.remove();
});

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const agentRow = async (agent: AgentFixture) =>
  (await db.pool.query<{ status: string }>('SELECT status FROM agents WHERE id = $1', [agent.agentId])).rows[0]!;

/** Every agent route, as the thief would call it with the credential alone. */
const ROUTES = [
  { method: 'GET' as const, url: '/v1/agent/status?wait=0' },
  { method: 'GET' as const, url: '/v1/agent/tasks/next?wait=0' },
  { method: 'POST' as const, url: '/v1/agent/deregister', payload: {} },
  {
    method: 'POST' as const,
    url: '/v1/agent/tasks/tsk_00000000000000000000000000/result',
    payload: { outcome: 'failed' },
  },
];

describe('a stolen credential alone is useless', () => {
  it.each([
    ['no proof at all', () => undefined],
    ['a proof signed with a key of its own', (m: string) => selfSigned(m)],
    ['a malformed proof', () => 'ed25519 t=1,sig=AAAA'],
  ])('%s: 401 PROOF_REJECTED on every agent route, nothing changes', async (_name, proofOf) => {
    const agent = await createAgentWithLicense(db.pool);
    for (const r of ROUTES) {
      const body = r.payload === undefined ? '' : JSON.stringify(r.payload);
      const message = proofMessage({ method: r.method, path: r.url, bodySha256: sha(body), t: Date.now() });
      const res = await a.app.inject({
        ...r,
        headers: { ...asAgent(agent), [PROOF_HEADER]: proofOf(message) },
      });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('PROOF_REJECTED');
      expect(res.headers[SESSION_HEADER]).toBeUndefined();
    }
    expect((await agentRow(agent)).status).toBe('active');
    // The genuine agent is not locked out by the thief's attempts.
    expect((await a.app.inject({ method: 'GET', url: '/v1/agent/status', headers: asAgent(agent) })).statusCode).toBe(
      200,
    );
  });

  it('refused proofs never spend the address budget: 60 in a row stay 401, then the agent gets 200', async () => {
    const agent = await createAgentWithLicense(db.pool);
    for (let i = 0; i < 60; i++) {
      const res = await a.app.inject({
        method: 'GET',
        url: '/v1/agent/status',
        headers: { ...asAgent(agent), [PROOF_HEADER]: undefined },
      });
      expect(res.statusCode).toBe(401);
    }
    const ok = await a.app.inject({ method: 'GET', url: '/v1/agent/status', headers: asAgent(agent) });
    expect(ok.statusCode).toBe(200);
  });
});

describe('a recorded genuine proof does not open another request', () => {
  const proofFor = (agent: AgentFixture, method: string, url: string, body = '', t = Date.now()) =>
    agentProofFor(agent.credential, { method, url, body }, t);
  const send = (agent: AgentFixture, req: { method: 'GET' | 'POST'; url: string; payload?: string }, proof: string) =>
    a.app.inject({
      ...req,
      headers: {
        ...asAgent(agent),
        [PROOF_HEADER]: proof,
        ...(req.payload !== undefined ? { 'content-type': 'application/json' } : {}),
      },
    });

  it('another path, method or body, another agent, or a time outside the window: refused', async () => {
    const agent = await createAgentWithLicense(db.pool);
    const other = await createAgentWithLicense(db.pool);
    const statusProof = proofFor(agent, 'GET', '/v1/agent/status');
    expect((await send(agent, { method: 'GET', url: '/v1/agent/status' }, statusProof)).statusCode).toBe(200);
    const refused = [
      await send(agent, { method: 'POST', url: '/v1/agent/deregister', payload: '{}' }, statusProof),
      await send(agent, { method: 'GET', url: '/v1/agent/status?since=0&wait=30' }, statusProof),
      await send(agent, { method: 'GET', url: '/v1/agent/tasks/next' }, statusProof),
      // Signed for an empty body, sent with one.
      await send(
        agent,
        { method: 'POST', url: '/v1/agent/deregister', payload: '{}' },
        proofFor(agent, 'POST', '/v1/agent/deregister', ''),
      ),
      await send(other, { method: 'GET', url: '/v1/agent/status' }, statusProof),
      await send(
        agent,
        { method: 'GET', url: '/v1/agent/status' },
        proofFor(agent, 'GET', '/v1/agent/status', '', Date.now() - PROOF_WINDOW_MS - 5000),
      ),
      await send(
        agent,
        { method: 'GET', url: '/v1/agent/status' },
        proofFor(agent, 'GET', '/v1/agent/status', '', Date.now() + PROOF_WINDOW_MS + 5000),
      ),
    ];
    for (const res of refused) {
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('PROOF_REJECTED');
      // The refusal says the control plane's time, so an agent with a skewed clock can correct.
      expect(Math.abs(Number(res.headers[SERVER_TIME_HEADER]) - Date.now())).toBeLessThan(10_000);
    }
    expect((await agentRow(agent)).status).toBe('active');
  });
});

describe('sessions: a signed request buys an HMAC session key, valid on every API process', () => {
  it('HMAC proofs under the session pass on both processes; a wrong key, another agent or an ended session do not', async () => {
    const agent = await createAgentWithLicense(db.pool);
    const other = await createAgentWithLicense(db.pool);
    const first = await a.app.inject({ method: 'GET', url: '/v1/agent/status', headers: asAgent(agent) });
    expect(first.statusCode).toBe(200);
    const session = parseSession(first.headers[SESSION_HEADER]);
    expect(session).not.toBeNull();
    const hmacProof = (key: string, url: string, s = session!.expiresAt, t = Date.now()) => {
      const message = proofMessage({ method: 'GET', path: url, bodySha256: sha(''), t });
      return formatHmacProof(
        t,
        s,
        createHmac('sha256', Buffer.from(key, 'base64url')).update(message).digest('base64url'),
      );
    };
    for (const app of [a, b]) {
      const res = await app.app.inject({
        method: 'GET',
        url: '/v1/agent/status',
        headers: { ...asAgent(agent), [PROOF_HEADER]: hmacProof(session!.key, '/v1/agent/status') },
      });
      expect(res.statusCode).toBe(200);
      // HMAC-proved requests are not handed a new session.
      expect(res.headers[SESSION_HEADER]).toBeUndefined();
    }
    const wrong = [
      { who: agent, proof: hmacProof(Buffer.alloc(32, 7).toString('base64url'), '/v1/agent/status') },
      { who: other, proof: hmacProof(session!.key, '/v1/agent/status') },
      { who: agent, proof: hmacProof(session!.key, '/v1/agent/tasks/next') },
      // A session whose expiry the thief moved: the key is bound to it.
      { who: agent, proof: hmacProof(session!.key, '/v1/agent/status', session!.expiresAt + 1000) },
      // Past its end (the proof is dated after it).
      {
        who: agent,
        proof: hmacProof(session!.key, '/v1/agent/status', Date.now() - 1000, Date.now()),
      },
    ];
    for (const w of wrong) {
      const res = await a.app.inject({
        method: 'GET',
        url: '/v1/agent/status',
        headers: { ...asAgent(w.who), [PROOF_HEADER]: w.proof },
      });
      expect(res.statusCode).toBe(401);
    }
  });
});

function selfSigned(message: string): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const t = Number(message.split('\n').at(-1));
  return formatEd25519Proof(t, sign(null, Buffer.from(message), privateKey).toString('base64url'));
}
